// A local Cosmos DB (SQL API) server for the tests: @vercel/cosmosdb-server over HTTPS with
// keep-alive on, bound to loopback.
//
//   node scripts/cosmos_server.mjs PORT CERT_PEM KEY_PEM
//
// PORT 0 picks a free port. When listening it prints one line to stdout:
//   cosmosdb-server ready https://127.0.0.1:PORT/
// It exits when its standard input closes (so it never outlives the test run that started it,
// even one that was killed) or on SIGTERM / SIGINT.
//
// Three fixes are applied to the package (1.0.1), so that it answers as real Cosmos DB does where
// the Python SDK would otherwise trip over it. Nothing else of its behaviour is changed: its
// remaining gaps (batch not atomic, query partition_key ignored, no TTL, a hierarchical key
// honoured at its first level only...) stay visible.
//  1. Reading an item that does not exist answers 404 NotFound. The package answers 500 (its
//     read handler dereferences the missing item), which the SDK retries as a server fault.
//  2. A transactional batch takes its partition key from the request's
//     x-ms-documentdb-partitionkey header, as the real service does and as the Python SDK sends
//     it. The package reads it only from each operation (where the JS SDK puts it), so every
//     replace, upsert and delete in a batch from the Python SDK failed with a 500.
//  3. A query scoped to a prefix of a hierarchical partition key (the department, for
//     /tenantId then /sessionId) is accepted when its WHERE clause names the first level. The
//     package demanded every level, which a prefix query cannot name.
//
// With COSMOS_SERVER_RECORD=FILE set, every request's method, path and partition-key header
// is appended to FILE as one JSON line: the tests read it to check that the SDK sends the
// whole hierarchical key on every point operation and batch (the server itself keeps only the
// first level, so only the headers can show it).
import { appendFileSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

const [portArg, certPath, keyPath] = process.argv.slice(2);
if (portArg === undefined || !certPath || !keyPath) {
  console.error("usage: node scripts/cosmos_server.mjs PORT CERT_PEM KEY_PEM");
  process.exit(2);
}
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`not a port: ${portArg}`);
  process.exit(2);
}

// The read handler must be patched before the package builds its route table, which takes the
// handler function when lib/routes.js is first loaded (by lib/index.js).
const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");
const partitionHeader = require("@vercel/cosmosdb-server/lib/utils/get-partition-from-header");
const originalRead = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  const header = partitionHeader.default(req);
  if (collection.read() && header !== undefined && header !== "[{}]") {
    const partitionKey = partitionHeader.parsePartitionKey(header, params.docId);
    if (!collection.document(params.docId, partitionKey).read()) {
      res.statusCode = 404;
      return {
        code: "NotFound",
        message: "Entity with the specified id does not exist in the system.",
      };
    }
  }
  return originalRead(account, req, res, params);
};

const json = require("@vercel/cosmosdb-server/lib/json");
const originalJson = json.default;
json.default = async (req) => {
  const body = await originalJson(req);
  const header = partitionHeader.default(req);
  const isBatch = String(req.headers["x-ms-cosmos-is-batch-request"]).toLowerCase() === "true";
  if (isBatch && Array.isArray(body) && header !== undefined) {
    for (const op of body) {
      if (op && typeof op === "object" && op.partitionKey === undefined) {
        op.partitionKey = header;
      }
    }
  }
  return body;
};

const requireFromServer = createRequire(
  require.resolve("@vercel/cosmosdb-server/lib/handler/query-documents"),
);
const cosmosQuery = requireFromServer("@zeit/cosmosdb-query");
const queryPrototype = Object.getPrototypeOf(cosmosQuery.default("SELECT * FROM c"));
const containsPartitionKeys = queryPrototype.containsPartitionKeys;
queryPrototype.containsPartitionKeys = function firstLevel(paths) {
  return containsPartitionKeys.call(this, paths.slice(0, 1));
};

const { createHttpsServer } = require("@vercel/cosmosdb-server");

const server = createHttpsServer({
  cert: readFileSync(certPath),
  key: readFileSync(keyPath),
  keepAlive: true,
});

const record = process.env.COSMOS_SERVER_RECORD;
if (record) {
  server.prependListener("request", (req) => {
    const line = {
      method: req.method,
      path: req.url,
      partitionKey: req.headers["x-ms-documentdb-partitionkey"] ?? null,
      batch: String(req.headers["x-ms-cosmos-is-batch-request"]).toLowerCase() === "true",
      query: String(req.headers["x-ms-documentdb-isquery"]).toLowerCase() === "true",
      upsert: String(req.headers["x-ms-documentdb-is-upsert"]).toLowerCase() === "true",
    };
    appendFileSync(record, `${JSON.stringify(line)}\n`);
  });
}

server.listen(port, "127.0.0.1", () => {
  const { port: actual } = server.address();
  process.stdout.write(`cosmosdb-server ready https://127.0.0.1:${actual}/\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
