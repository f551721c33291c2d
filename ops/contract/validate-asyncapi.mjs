// Validates an AsyncAPI document with the AsyncAPI project's own parser, resolving the
// JSON Schema files its payloads reference. Prints every diagnostic; exits 1 on any error.
// Usage: node ops/contract/validate-asyncapi.mjs schemas/asyncapi.json
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
const path = resolve(process.argv[2]);
const { document, diagnostics } = await fromFile(new Parser(), path).parse();
for (const d of diagnostics) {
  console.log(`${SEVERITY[d.severity]} ${d.code} ${d.path.join(".")}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === 0).length;
if (!document || errors) {
  console.log(`asyncapi: ${path} is invalid (${errors} error(s))`);
  process.exit(1);
}
const messages = document.messages().all().map((m) => m.id());
console.log(
  `asyncapi: ${path} is valid AsyncAPI ${document.version()}: ` +
    `${document.channels().length} channels, ${document.operations().length} operations, ` +
    `messages ${messages.join(", ")}`,
);
