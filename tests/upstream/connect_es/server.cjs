// ChatService on connect-es (Connect, gRPC and gRPC-Web), with a schema built at run time
// from a FileDescriptorSet: `node server.cjs h2|h1 <descriptor-set>`.
// h2 serves HTTP/2 only (http2.createServer: h2c, no HTTP/1.1); h1 serves HTTP/1.1 only.
// Prints {"port": N} on stdout when listening; exits when stdin closes.
"use strict";
const fs = require("node:fs");
const http = require("node:http");
const http2 = require("node:http2");
const { createFileRegistry, fromBinary } = require("@bufbuild/protobuf");
const { FileDescriptorSetSchema } = require("@bufbuild/protobuf/wkt");
const { Code, ConnectError } = require("@connectrpc/connect");
const { connectNodeAdapter } = require("@connectrpc/connect-node");

const [mode, descriptorPath] = process.argv.slice(2);
const files = fromBinary(FileDescriptorSetSchema, fs.readFileSync(descriptorPath));
const service = createFileRegistry(files).getService("ces.v1.ChatService");

function mark(ctx, method) {
  ctx.responseHeader.set("x-served-by", "connect-es");
  ctx.responseTrailer.set("x-done", method);
}

const impl = {
  async say(req, ctx) {
    mark(ctx, "Say");
    return { sentence: req.sentence };
  },
  async *countdown(req, ctx) {
    mark(ctx, "Countdown");
    for (let i = req.start; i > 0; i--) {
      yield { sentence: String(i), index: req.start - i };
    }
  },
  async collect(reqs, ctx) {
    mark(ctx, "Collect");
    const parts = [];
    for await (const req of reqs) {
      parts.push(req.sentence);
    }
    return { sentence: parts.join(","), index: parts.length };
  },
  async *chat(reqs, ctx) {
    mark(ctx, "Chat");
    let index = 0;
    for await (const req of reqs) {
      yield { sentence: "you said " + req.sentence, index: index++ };
    }
  },
  async fail(req) {
    throw new ConnectError("cannot: " + req.sentence, Code.FailedPrecondition);
  },
};

const handler = connectNodeAdapter({ routes: (router) => router.service(service, impl) });

function withVersion(req, res) {
  res.setHeader("x-http-version", req.httpVersion);
  handler(req, res);
}

const server = mode === "h2" ? http2.createServer(withVersion) : http.createServer(withVersion);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
