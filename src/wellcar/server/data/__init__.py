"""What the REST API reads and writes, one module per resource (as Nebraska's `pkg/api`).

Every function takes a Connection (the caller owns the transaction) and returns the
module's own dataclasses; `server/api` turns them into HTTP bodies. Rules are Nebraska's
(`backend/pkg/api/*.go`); where Nebraska would answer 500 for a user mistake, these raise
InvalidInput/NotFound/Conflict with a message that names the field.
"""
