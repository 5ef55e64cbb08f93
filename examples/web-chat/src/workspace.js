// The page's small workspace: what the client-side tool read_file reads.
export const WORKSPACE = {
  "README.md": "# Demo project\nA tiny workspace that lives in the page.",
  "src/app.py": 'print("hello from the workspace")',
  "notes.txt": "Remember: the runtime owns the history.",
};

/** The client-side tool: runs in the page, its output goes back to the runtime. */
export function readFile({ path }) {
  if (!(path in WORKSPACE)) {
    throw new Error(`no such file: ${path}`);
  }
  return WORKSPACE[path];
}
