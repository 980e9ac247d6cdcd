// child.c as text, for TinyCC: only a gcr built without gcc (or run from the sources) needs
// it, so child.ts requires this module at that moment instead of carrying 25 KB of C source
// in every start.
import text from "./child.c" with { type: "text" };

export const source: string = text;
