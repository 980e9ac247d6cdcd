// Text imports (`import src from "./child.c" with { type: "text" }`) are embedded by bun build.
declare module "*.c" {
  const text: string;
  export default text;
}
