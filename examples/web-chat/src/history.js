// The runtime owns the history: on load, the page shows what the runtime stored for this chat.
export async function storedHistory(chatId) {
  const response = await fetch(`/agent/sessions/${encodeURIComponent(chatId)}/messages?limit=100`);
  if (response.status === 404) return [];
  if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
  const { messages } = await response.json();
  return messages
    .filter((m) => (m.role === "user" || m.role === "assistant") && m.content && !m.superseded)
    .map((m) => ({
      id: `stored-${m.seq}`,
      role: m.role,
      parts: [{ type: "text", text: m.content, state: "done" }],
      metadata: { status: m.status },
    }));
}
