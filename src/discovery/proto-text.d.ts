// Files imported `with { type: "text" }` (Bun embeds them, also in a compiled binary).
declare module "*.proto" {
  const text: string;
  export default text;
}
