// The dev server serves the page and proxies /agent to the runtime, adding the internal key on
// the way, as the gateway would in production: the key never reaches the browser.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const runtime = process.env.AGENT_RUNTIME_URL ?? "http://127.0.0.1:8001"; // devserver's port
const key = process.env.AGENT_RUNTIME__INTERNAL_API_KEY;
if (!key) {
  throw new Error(
    "Set AGENT_RUNTIME__INTERNAL_API_KEY to the runtime's key (the proxy adds it to every request).",
  );
}

export default defineConfig({
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: Number(process.env.WEB_CHAT_PORT ?? 5173),
    strictPort: true,
    proxy: {
      "/agent": { target: runtime, headers: { "X-Internal-Auth": key } },
    },
  },
});
