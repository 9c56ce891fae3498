// The Socket.IO peer's node: Socket.IO 4 with its Redis adapter, as its docs set up a multi-node server.
//
//     node server.js <port> <redis url>
//
// A client connects to /socket.io/?EIO=4&transport=websocket&id=<client id>[&chans=a,b] and joins the
// rooms `user.<id>` and `chan.<name>`; everything it receives comes from the business side through
// the adapter's Redis channels (emitter.js): nothing here but rooms.
"use strict";
const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");

async function main() {
  const [port, url] = process.argv.slice(2);
  const pubClient = createClient({ url });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const httpServer = createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient), transports: ["websocket"], serveClient: false,
  });
  io.on("connection", (socket) => {
    const { id, chans } = socket.handshake.query;
    const rooms = [`user.${id}`];
    for (const chan of (chans || "").split(",")) {
      if (chan) rooms.push(`chan.${chan}`);
    }
    socket.join(rooms);
  });
  const version = require("socket.io/package.json").version;
  httpServer.listen(Number(port), "127.0.0.1", () => console.log(`socket.io ${version} on ${port}`));
}

process.on("SIGTERM", () => process.exit(0));
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
