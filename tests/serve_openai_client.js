// A real client of `wkvq serve`: the official `openai` npm package (scripts/install_npm.sh puts it
// in build/npm). Used by tests/python/test_serve.py as
//   node serve_openai_client.js NPM_DIR BASE_URL MODEL PROMPT CHAT_MESSAGE MAX_TOKENS
// Prints one JSON object: the text of a streamed and a whole completion, and of a streamed and a
// whole chat completion (greedy), with the finish reasons and usage the client saw.
'use strict';
const path = require('path');

async function main() {
  const [npmDir, baseURL, model, prompt, message, maxTokensText] = process.argv.slice(2);
  const OpenAI = require(path.join(npmDir, 'node_modules', 'openai'));
  const client = new OpenAI({baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000});
  const maxTokens = Number(maxTokensText);
  const out = {};

  const whole = await client.completions.create({model, prompt, max_tokens: maxTokens,
                                                 temperature: 0});
  out.completion = {text: whole.choices[0].text, finish_reason: whole.choices[0].finish_reason,
                    usage: whole.usage};

  let text = '', finish = null, usage = null, chunks = 0;
  const stream = await client.completions.create({model, prompt, max_tokens: maxTokens,
                                                  temperature: 0, stream: true});
  for await (const chunk of stream) {
    chunks += 1;
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    if (chunk.usage) usage = chunk.usage;
  }
  out.completion_stream = {text, finish_reason: finish, usage, chunks};

  const messages = [{role: 'user', content: message}];
  const chat = await client.chat.completions.create({model, messages, max_tokens: maxTokens,
                                                     temperature: 0});
  out.chat = {text: chat.choices[0].message.content, role: chat.choices[0].message.role,
              finish_reason: chat.choices[0].finish_reason, usage: chat.usage};

  text = ''; finish = null; usage = null; chunks = 0;
  let role = null;
  const chatStream = await client.chat.completions.create({model, messages, max_tokens: maxTokens,
                                                           temperature: 0, stream: true});
  for await (const chunk of chatStream) {
    chunks += 1;
    const delta = chunk.choices[0].delta;
    if (delta.role) role = delta.role;
    if (delta.content) text += delta.content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    if (chunk.usage) usage = chunk.usage;
  }
  out.chat_stream = {text, role, finish_reason: finish, usage, chunks};

  try {
    await client.completions.create({model: 'no-such-model', prompt, max_tokens: 2});
    out.unknown_model = {status: 200};
  } catch (e) {
    out.unknown_model = {status: e.status, code: e.code, type: e.type};
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
