'use strict';
// Runs rtdb's rules case files (tests/cases/rules/*.json) through targaryen,
// a Firebase rules simulator, and prints what it decides as JSON on stdout.
// test_targaryen.py compares that with the expectations in the case files.

const fs = require('fs');
const path = require('path');
const parser = require('targaryen/lib/parser');
const database = require('targaryen/lib/database');
const firebaseJson = require('firebase-json'); // targaryen's own reader of rules files

const CASES = path.join(__dirname, '..', 'cases', 'rules');
const NOW = 1500000000000;

function load(name) {
  return JSON.parse(fs.readFileSync(path.join(CASES, name), 'utf8'));
}

// REST query parameters -> targaryen's query object.
function toQuery(params) {
  if (!params) {
    return undefined;
  }
  const query = {};
  Object.keys(params).forEach(key => {
    const value = JSON.parse(params[key]);
    if (key === 'orderBy') {
      if (value === '$key') {
        query.orderByKey = true;
      } else if (value === '$value') {
        query.orderByValue = true;
      } else if (value === '$priority') {
        query.orderByPriority = true;
      } else {
        query.orderByChild = value;
      }
    } else {
      query[key] = value;
    }
  });
  return query;
}

function expression(doc, c) {
  let rule;
  try {
    rule = parser.parse(c.rule, Object.keys(c.wildcards || {}), Boolean(c.write));
  } catch (e) {
    return {result: 'invalid', detail: e.message};
  }
  const root = database.snapshot('/', c.data === undefined ? null : c.data, NOW);
  const state = Object.assign({
    query: database.query(toQuery(c.query)),
    root,
    data: root,
    newData: database.snapshot('/', c.newData === undefined ? null : c.newData, NOW),
    now: c.now === undefined ? NOW : c.now,
    auth: (c.auth && doc.users[c.auth]) || null
  }, c.wildcards || {});
  try {
    return {result: rule.evaluate(state)};
  } catch (e) {
    return {result: 'error', detail: e.message};
  }
}

function ruleset(c) {
  try {
    database.ruleset(c.rules);
    return {result: true};
  } catch (e) {
    return {result: false, detail: e.message};
  }
}

function operation(scenario, op) {
  const now = op.now === undefined ? (scenario.now === undefined ? NOW : scenario.now) : op.now;
  const data = op.data === undefined ? (scenario.data === undefined ? null : scenario.data) : op.data;
  const auth = 'auth' in op ? op.auth : (scenario.auth === undefined ? null : scenario.auth);
  const rules = 'source' in scenario ? firebaseJson.parse(scenario.source) : scenario.rules;
  let db = database.create(rules, data, now);
  if (auth != null) {
    db = db.as(auth);
  }
  try {
    let result;
    if (op.op === 'read') {
      result = db.read(op.path, {now, query: toQuery(op.query)});
    } else if (op.op === 'write') {
      result = db.write(op.path, op.value, {now});
    } else {
      result = db.update(op.path, op.value, {now});
    }
    return {result: result.allowed};
  } catch (e) {
    const invalidPath = /invalid|path/i.test(e.message);
    return {result: invalidPath ? 'invalid_path' : 'exception', detail: e.message};
  }
}

const expressions = load('expressions.json');
const rulesets = load('rulesets.json');
const operations = load('operations.json');

const out = {
  expressions: expressions.cases.map(c => expression(expressions, c)),
  rulesets: rulesets.cases.map(c => ('rules' in c ? ruleset(c) : null)),
  operations: operations.scenarios.map(s => s.ops.map(op => operation(s, op)))
};

process.stdout.write(JSON.stringify(out));
