#!/usr/bin/env node
// The reference side of tests/python/test_chat_template.py: renders chat templates with
// @huggingface/jinja (transformers.js's Jinja interpreter).
//
//   node chat_template_reference.js NPM_DIR CASES.json
//     NPM_DIR     folder whose node_modules holds @huggingface/jinja (build/npm)
//     CASES.json  a JSON array of {"template": string, "variables": object}; the variables are
//                 what the template sees (messages, add_generation_prompt, bos_token, ...)
// Prints a JSON array with, per case, {"text": rendered} or {"error": message}.
"use strict";
const fs = require("fs");
const path = require("path");

const [npmDir, casesPath] = process.argv.slice(2);
if (!casesPath) {
  console.error("usage: chat_template_reference.js NPM_DIR CASES.json");
  process.exit(2);
}
const { Template } = require(path.resolve(npmDir, "node_modules/@huggingface/jinja"));
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
const out = cases.map((c) => {
  try {
    return { text: new Template(c.template).render(c.variables) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out) + "\n");
