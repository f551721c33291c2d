"""The contract in the ecosystem's own formats: the generated documents (JSON Schemas,
AsyncAPI, OpenAPI), the released copies, and the gate on breaking changes between them."""
