// The Socket.IO peer's business side: what a Node.js backend runs to push to clients, the Redis emitter.
//
//     node emitter.js <redis url>
//
// Driven by the benchmark's sender process (bench/sender.py) through stdin, one line each:
// `<room>\t<json>` emits the event "message" with that data to the room (an empty room: to everyone);
// `#` answers one line on stdout once every emit before it has reached Redis (a PING queued behind
// the PUBLISHes on the same connection), so the sender knows when a batch was sent.
"use strict";
const readline = require("node:readline");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

async function main() {
  const client = createClient({ url: process.argv[2] });
  await client.connect();
  const emitter = new Emitter(client);
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    if (line === "#") {
      client.ping().then(() => process.stdout.write("\n"), (error) => process.stdout.write(`${error}\n`));
      return;
    }
    const tab = line.indexOf("\t");
    const room = line.slice(0, tab);
    const data = JSON.parse(line.slice(tab + 1));
    (room ? emitter.to(room) : emitter).emit("message", data);
  });
  lines.on("close", () => client.quit().finally(() => process.exit(0)));
  process.stdout.write("\n"); // ready
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
