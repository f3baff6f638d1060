#!/usr/bin/env node
// The reference side of tests/python/test_hf_tokenizer*.py: encodes texts with @lenml/tokenizers
// (an independent JavaScript implementation of Hugging Face tokenizers, a transformers.js fork)
// from a tokenizer.json + tokenizer_config.json, and prints for each text one JSON line
// {"ids": [...], "text": decode(ids)}.
//
//   node hf_tokenizer_reference.js NPM_DIR TOKENIZER_DIR TEXTS.jsonl [options]
//     NPM_DIR        folder whose node_modules holds @lenml/tokenizers (build/npm)
//     TOKENIZER_DIR  folder with tokenizer.json and (optional) tokenizer_config.json
//     TEXTS.jsonl    one JSON string per line
//   --add-special    add the tokens of the post-processor / add_bos_token (default: none)
//   --split-special  special added tokens are ordinary text (Hugging Face's
//                    split_special_tokens=True): they are left out of the added-token list
//                    (this implementation has no such option)
// Decoding keeps special tokens and does no clean-up of spaces (exact text).
"use strict";
const fs = require("fs");
const path = require("path");

const [npmDir, tokDir, textsPath, ...flags] = process.argv.slice(2);
if (!textsPath) {
  console.error("usage: hf_tokenizer_reference.js NPM_DIR TOKENIZER_DIR TEXTS.jsonl [options]");
  process.exit(2);
}
const { TokenizerLoader } = require(path.resolve(npmDir, "node_modules/@lenml/tokenizers"));
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
const configPath = path.join(tokDir, "tokenizer_config.json");
const tokenizerConfig = fs.existsSync(configPath)
  ? JSON.parse(fs.readFileSync(configPath, "utf8"))
  : {};
if (flags.includes("--split-special")) {
  tokenizerJSON.added_tokens = tokenizerJSON.added_tokens.filter((t) => !t.special);
}
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
const addSpecial = flags.includes("--add-special");
const lines = fs.readFileSync(textsPath, "utf8").split("\n").filter((l) => l.length > 0);
const out = [];
for (const line of lines) {
  const text = JSON.parse(line);
  const ids = tok.encode(text, { add_special_tokens: addSpecial });
  const decoded =
    ids.length === 0
      ? ""
      : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  out.push(JSON.stringify({ ids, text: decoded }));
}
process.stdout.write(out.join("\n") + "\n");
