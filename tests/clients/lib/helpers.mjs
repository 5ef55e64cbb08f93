// Talking to the live runtime and the development LLM that tests/e2e/test_clients.py started.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

export const RUNTIME_URL = required("RUNTIME_URL");
export const RUNTIME_KEY = required("RUNTIME_KEY");
export const DEVLLM_URL = required("DEVLLM_URL");
export const AUTH = { "X-Internal-Auth": RUNTIME_KEY };

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through \`uv run pytest tests/e2e/test_clients.py\``);
  }
  return value;
}

export function sessionId(prefix) {
  return `${prefix}-${randomUUID()}`;
}

async function post(url, body, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${url}: HTTP ${response.status} ${await response.clone().text()}`);
  return response.json();
}

/** The development LLM: forget earlier scripts and requests; script the next replies. */
export const devllm = {
  reset: () => post(`${DEVLLM_URL}/__dev__/reset`, {}),
  script: (...replies) => post(`${DEVLLM_URL}/__dev__/script`, { replies }),
  requests: async () => (await fetch(`${DEVLLM_URL}/__dev__/requests`)).json(),
};

/** A slow answer, so that there is time to act while it streams. */
export const slowReply = { tokens: Array.from({ length: 200 }, (_, i) => `w${i} `), token_delay_ms: 50 };

export const cancelTurn = (session) => post(`${RUNTIME_URL}/agent/sessions/${session}/cancel`, {}, AUTH);

export async function storedMessages(session) {
  const response = await fetch(`${RUNTIME_URL}/agent/sessions/${session}/messages`, { headers: AUTH });
  assert.equal(response.status, 200);
  return (await response.json()).messages;
}

/** Poll until ``check()`` is true (generous deadline: the machine may be busy). */
export async function eventually(check, what, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}
