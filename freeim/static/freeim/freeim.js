/*
 * freeim.js: the browser client of freeim. No dependencies, no build step; load it
 * as a classic script (it defines window.FreeIM) or bundle it (CommonJS export).
 *
 *   const im = new FreeIM({
 *     api: "/im/",              // where freeim.urls is mounted
 *     connectUrl: "/im/connect/", // default: api + "connect/"
 *     meta: "",                 // sent with every connect; the signals get it back
 *     headers: {},              // object, or function returning one, added to every API request: a
 *                               // credential of the tab's own, e.g. () => ({Authorization: "Bearer " + token}),
 *                               // makes each tab its own user (cookies are shared by all tabs of a browser)
 *     fetchOptions: {},         // extra fetch() options (credentials defaults to "same-origin"; "omit" keeps
 *                               // the session cookie out of calls authenticated by headers)
 *     csrfCookie: "csrftoken",  // Django's CSRF cookie, sent back as X-CSRFToken (null: don't)
 *     pingInterval: 25000,      // ms between pings; no frame for a whole interval = connection lost
 *     backoff: {min: 500, max: 15000}, // reconnect after d/2..d ms, d doubling from min up to max
 *     resume: true,             // catch up on missed messages at every connect (see "Missed messages")
 *     storage: sessionStorage,  // where the last position is kept (per tab); null: in memory only
 *   });
 *
 *   im.on("message",   f => ...)  // {type: "message", id, pos, from, data}: each once, in order
 *   im.on("chan",      f => ...)  // {type: "chan", id, chan, pos, from, data}: each once, in order
 *   im.on("broadcast", f => ...)  // {type: "broadcast", data}
 *   im.on("receipt",   f => ...)  // {type: "receipt", id, pos, to, status: "delivered" | "offline" | "read"}: id
 *                                 // is the one sendMessage's answer gave; it may arrive before that answer; each
 *                                 // once, also when it was made while this tab was away
 *   im.on("left",      f => ...)  // {type: "left", chan}: the server took us out of chan (not rejoined)
 *   im.on("gap",       f => ...)  // {type: "gap", since}: messages after `since` are lost to this tab
 *                                 // (the inbox no longer kept them): re-sync from your own history
 *   im.on("pending", e => ...)    // {key, to, data, receipt}: sendMessage put a message in the outbox
 *   im.on("sent",  e => ...)      // {key, id, to, data, receipt}: the server took an outbox message (also one
 *                                 // a reloaded page still had); id is the one its frame and receipts carry
 *   im.on("unsent", e => ...)     // {key, to, data, receipt, error}: the server refused it for good: not sent
 *   im.on("open",  e => ...)      // {clientId, server}: connected (im.joined already joined again)
 *   im.on("close", e => ...)      // {code, reason, reconnectIn}: after every failed or ended attempt;
 *                                 // reconnectIn is ms until the next one, or null if there is none
 *   im.on("forced_offline", e => ...) // {code: 4000, reason}: the server took us offline; no reconnect
 *   im.on("error", err => ...)    // a connect request failed, or a frame was not JSON
 *   // on() returns a function that removes the listener; off(type, fn) does too.
 *
 *   im.connect();  // POST connectUrl for a one-time URL, open the socket; reconnects by itself, to
 *                  // another node than the one it lost when the socket did not close cleanly
 *   im.close();    // close for good (until connect() again)
 *   im.state       // "idle" | "connecting" | "open" | "waiting" (to reconnect) | "closed"
 *   im.clientId    // our client id, known after the first connect request
 *
 * The socket only receives; everything a terminal does goes through the REST API.
 * These return promises of the parsed JSON answer, and reject with an Error that has
 * .status and .body (the answer's JSON) on an HTTP error:
 *
 *   im.sendMessage(to, data, {receipt: true})  // to: one id or an array of ids; see "Outbox"
 *   im.markRead(ids)                           // the user read these messages (ids of message frames):
 *                                              // their senders get "read" receipts
 *   im.joinChan(chan) / im.leaveChan(chan)     // after "open"; im.joined (a Set, kept in `storage`) is joined
 *                                              // again by every connect, and caught up on
 *   im.sendChanMessage(chan, data)
 *   im.chans()                                 // [{chan, online}], every page of chans/ read
 *   im.chanMembers(chan)                       // {chan, members}
 *   im.request(method, path, body)             // anything else under `api`
 *
 * Reconnecting: every attempt fetches a fresh token (tokens are single-use and
 * short-lived). Close codes 4000 (forced offline) and 4004 (unknown path), a 401/403
 * from the connect request (logged out) and close() stop reconnecting; 4007 (the node is
 * draining: a deploy) reconnects at once, to another node; everything else retries with backoff.
 * Leaving the page closes the socket; coming back to it from the back/forward cache
 * connects again.
 *
 * Outbox: sendMessage puts the message in the outbox (im.pending, kept in `storage`, so a
 * reload of the tab keeps it) and posts it with an idempotency key. A network failure, a 429,
 * 502, 503 or 504 leaves it there, retried in order with backoff and at every connect, until
 * the server takes it ("sent"; the promise resolves with the answer) or refuses it with any
 * other status ("unsent"; the promise rejects). A retry of a message whose answer was lost sends nothing twice: the
 * server knows its key. A reloaded page finds what it had not sent in im.pending.
 *
 * Missed messages: every private message (and every receipt) carries its position in the
 * client's inbox (`pos`). The client keeps the last one it saw (in `storage`, so a reload of the tab
 * keeps it too) and sends it as `since` with every connect request: the server then
 * sends what came after it first, then live messages. The first connect of a tab asks
 * for all the inbox keeps ("*"). A message seen already is not passed on again.
 * im.position is the last position seen (null before any). Chan messages carry their
 * position in their chan's stream, kept per chan (im.chanPositions) and sent as
 * `chans_since`: the chans the client is in when it connects (auto-joined ones, groups, and
 * im.joined, which the connect joins again) catch up the same way.
 */
(function (root, factory) {
  "use strict";
  const FreeIM = factory();
  if (typeof module === "object" && module.exports) module.exports = FreeIM;
  else root.FreeIM = FreeIM;
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const FORCED_OFFLINE = 4000;
  const UNKNOWN_PATH = 4004;  // the URL is wrong: trying it again cannot help
  const NODE_DRAINING = 4007;  // the node is stopping (a deploy): go to another one at once
  const PING = JSON.stringify({type: "ping"});
  const POSITION_KEY = "freeim.position";
  const CHANS_KEY = "freeim.chanPositions";
  const OUTBOX_KEY = "freeim.outbox";
  const AVOID_KEY = "freeim.avoid";
  const JOINED_KEY = "freeim.joined";
  // Answers after which the same request may succeed: too many requests, a proxy or the store (503) not
  // there yet. Any other refusal (4xx, a 500) comes again: the message is "unsent" rather than stuck.
  const RETRIED = new Set([429, 502, 503, 504]);
  const MAX_AHEAD = 1000;

  function readCookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  class FreeIM {
    constructor(options = {}) {
      const api = options.api || "/im/";
      this.options = Object.assign({
        api,
        connectUrl: api + "connect/",
        meta: "",
        headers: {},
        fetchOptions: {},
        csrfCookie: "csrftoken",
        pingInterval: 25000,
      }, options);
      this.options.backoff = Object.assign({min: 500, max: 15000}, options.backoff);
      this.state = "idle";
      this.clientId = null;
      this._listeners = {};
      this._socket = null;
      this._timer = null;     // the pending reconnect
      this._pinger = null;
      this._attempt = 0;      // failures since the last stable connection
      this._alive = false;    // a frame arrived since the last ping
      this._generation = 0;   // bumped by close(): late answers of an older attempt are dropped
      this._server = null;    // the node of the last ticket
      this._storage = "storage" in options ? options.storage : defaultStorage();
      this._avoid = this._stored(AVOID_KEY);  // a reload while the node was dead does not go back to it
      this.joined = new Set(JSON.parse(this._stored(JOINED_KEY) || "[]"));  // the chans we joined; a reload keeps them
      this.position = this._stored(POSITION_KEY);
      this.chanPositions = JSON.parse(this._stored(CHANS_KEY) || "{}");  // chan -> its position, as `position`
      this._above = {};       // stream ("" for the inbox, else a chan) -> offsets seen past its position
      this.pending = JSON.parse(this._stored(OUTBOX_KEY) || "[]");  // [{key, to, data, receipt}], oldest first
      this._waiting = new Map();  // outbox key -> {resolve, reject} of this page's sendMessage
      this._draining = false;
      this._outboxTimer = null;
      this._outboxAttempt = 0;
      if (typeof addEventListener === "function") this._followPageLifecycle();
    }

    // Chromium keeps the socket of a page in the back/forward cache open: the client would stay
    // online (and be sent messages) while its page is frozen and gone from the screen. So the
    // socket closes when the page is hidden away, and the client reconnects if it comes back.
    _followPageLifecycle() {
      let resume = false;
      addEventListener("pagehide", () => {
        resume = this.state !== "idle" && this.state !== "closed";
        if (resume) this.close();
      });
      addEventListener("pageshow", (event) => {
        if (event.persisted && resume) this.connect();
      });
    }

    on(type, listener) {
      (this._listeners[type] = this._listeners[type] || new Set()).add(listener);
      return () => this.off(type, listener);
    }

    off(type, listener) {
      const listeners = this._listeners[type];
      if (listeners) listeners.delete(listener);
    }

    _emit(type, event) {
      for (const listener of Array.from(this._listeners[type] || [])) {
        try {
          listener(event);
        } catch (error) {
          console.error("freeim: a " + type + " listener failed", error); // one bad listener must not starve the rest
        }
      }
    }

    connect() {
      this._drainOutbox();
      if (this.state === "idle" || this.state === "closed") {
        this._attempt = 0;
        this._dial(this._generation);
      }
      return this;
    }

    close() {
      this._generation++;
      clearTimeout(this._timer);
      const socket = this._socket;
      this._drop();
      this.state = "closed";
      if (socket) this._emit("close", {code: 1000, reason: "closed by the client", reconnectIn: null});
    }

    async _dial(generation) {
      this.state = "connecting";
      let ticket;
      try {
        const body = {meta: this.options.meta};
        if (this.options.resume !== false) {
          body.since = this.position || "*";
          if (Object.keys(this.chanPositions).length) body.chans_since = this.chanPositions;
        }
        // Chans belong to a client's online session: after its last socket closed it is in none, so the
        // socket joins ours again as it opens, before they are caught up on.
        if (this.joined.size) body.join = Array.from(this.joined);
        if (this._avoid) body.avoid = this._avoid;  // the node we just lost: another one, if there is one
        ticket = await this.request("POST", this.options.connectUrl, body);
      } catch (error) {
        if (generation !== this._generation) return;
        this._emit("error", error);
        const event = {code: null, reason: error.message};
        if (error.status === 401 || error.status === 403) { // logged out: retrying cannot help
          this.state = "closed";
          this._emit("close", Object.assign(event, {reconnectIn: null}));
        } else {
          this._retry(generation, event);
        }
        return;
      }
      if (generation !== this._generation) return;
      this.clientId = ticket.client_id;
      this._open(generation, ticket);
    }

    _open(generation, ticket) {
      const socket = new WebSocket(secureLike(ticket.url));
      let openedAt = null;
      this._server = ticket.server;
      socket.onopen = () => {
        openedAt = Date.now();
        this._setAvoid(null);
        this._startPinging(generation);
        this.state = "open";
        this._emit("open", {clientId: ticket.client_id, server: ticket.server});
        this._drainOutbox();  // back online: what waited goes now
      };
      socket.onmessage = (event) => this._dispatch(event.data);
      // A refused handshake (bad or expired token) shows up here as code 1006, like a lost network.
      socket.onclose = (event) => {
        // A node that accepts and drops us at once must not get a reconnect storm: only a
        // connection that stayed up for a while resets the backoff.
        if (openedAt !== null && Date.now() - openedAt > this.options.backoff.max) this._attempt = 0;
        this._lost(generation, event.code, event.reason);
      };
      this._socket = socket;
    }

    _dispatch(text) {
      this._alive = true;
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        this._emit("error", error);
        return;
      }
      if (frame && frame.type === "left") this._joined("delete", frame.chan);  // the server decided: do not rejoin
      if (frame && frame.type === "gap") this._forget(typeof frame.chan === "string" ? frame.chan : "");
      if (frame && typeof frame.pos === "string") {  // a chan's stream, or the inbox (messages and receipts)
        if (!(frame.type === "chan" ? this._advanceChan(frame) : this._advance(frame.pos))) return;
      }
      if (frame && typeof frame.type === "string") this._emit(frame.type, frame);
    }

    // Takes a message's inbox position; false if this tab had that message already.
    _advance(pos) {
      const taken = this._take("", pos, this.position);
      if (taken === false) return false;
      if (taken !== this.position) {
        this.position = taken;
        this._store(POSITION_KEY, taken);
      }
      return true;
    }

    // After a gap the stream starts again from what follows (its offsets may even be below the position held,
    // when Redis came back from an older snapshot): none of it may be taken for a message seen already.
    _forget(stream) {
      delete this._above[stream];
      if (stream === "") {
        this.position = null;
        this._store(POSITION_KEY, "");
      } else {
        delete this.chanPositions[stream];
        this._store(CHANS_KEY, JSON.stringify(this.chanPositions));
      }
    }

    // The same for a chan message, in its chan's stream.
    _advanceChan(frame) {
      const taken = this._take(frame.chan, frame.pos, this.chanPositions[frame.chan]);
      if (taken === false) return false;
      if (taken !== this.chanPositions[frame.chan]) {
        this.chanPositions[frame.chan] = taken;
        this._store(CHANS_KEY, JSON.stringify(this.chanPositions));
      }
      return true;
    }

    // A stream's position is the offset up to which every message was seen: a reconnect resumes from
    // there. Concurrent sends can deliver a later message first; it is remembered past the position
    // until the ones before it arrive (or come with the next catch-up). Returns the new position, or
    // false for a message seen already.
    _take(stream, pos, current) {
      const [epoch, text] = pos.split(".");
      const offset = Number(text);
      let [seenEpoch, mark] = current ? current.split(".") : [null, "0"];
      mark = Number(mark);
      if (seenEpoch !== epoch) {  // a new inbox (or none seen yet): everything in it is new
        const first = current == null && !(stream in this._above);
        this._above[stream] = new Set();
        if (first || seenEpoch !== null) mark = offset - 1;  // resume from here, not from before its start
        seenEpoch = epoch;
      }
      const above = this._above[stream] || (this._above[stream] = new Set());
      if (offset <= mark || above.has(offset)) return false;
      above.add(offset);
      while (above.has(mark + 1)) above.delete(++mark);
      if (above.size > MAX_AHEAD) {  // a hole that never fills: move on rather than remember without end
        mark = Math.max(...above);
        above.clear();
      }
      return epoch + "." + mark;
    }

    _setAvoid(server) {
      this._avoid = server;
      if (server === null) {
        try {
          if (this._storage) this._storage.removeItem(AVOID_KEY);
        } catch (error) { /* as in _store */ }
      } else {
        this._store(AVOID_KEY, server);
      }
    }

    _store(key, value) {
      try {
        if (this._storage) this._storage.setItem(key, value);
      } catch (error) { /* full or forbidden storage: the position stays in memory */ }
    }

    _stored(key) {
      try {
        return (this._storage && this._storage.getItem(key)) || null;
      } catch (error) {
        return null;
      }
    }

    // Browsers notice a dead TCP connection late or never: any frame (pongs included)
    // proves the socket alive; a whole ping interval without one means it is lost.
    _startPinging(generation) {
      this._alive = true;
      this._pinger = setInterval(() => {
        if (!this._alive) {
          this._lost(generation, 1006, "no answer to ping");
          return;
        }
        this._alive = false;
        this._socket.send(PING);
      }, this.options.pingInterval);
    }

    _lost(generation, code, reason) {
      if (generation !== this._generation) return;
      this._drop();
      // Lost without a clean close (the node died, or refused us): reconnect anywhere but there.
      this._setAvoid(code === 1000 ? null : this._server);
      if (code === FORCED_OFFLINE || code === UNKNOWN_PATH) {
        this.state = "closed";
        if (code === FORCED_OFFLINE) this._emit("forced_offline", {code, reason});
        this._emit("close", {code, reason, reconnectIn: null});
        return;
      }
      this._retry(generation, {code, reason}, code === NODE_DRAINING);
    }

    _drop() {
      clearInterval(this._pinger);
      const socket = this._socket;
      this._socket = null;
      if (socket) {
        socket.onopen = socket.onmessage = socket.onclose = null;
        if (socket.readyState <= WebSocket.OPEN) socket.close();
      }
    }

    // A drained node's terminals come back at once (within backoff.min, spread so a node's thousands do not dial in
    // the same millisecond), and it counts as no failure: their presence holds only for the node's grace period.
    _retry(generation, event, now = false) {
      const {min, max} = this.options.backoff;
      const ceiling = now ? min : Math.min(max, min * 2 ** this._attempt++);
      const delay = Math.round((now ? 0 : ceiling / 2) + Math.random() * ceiling / (now ? 1 : 2)); // jitter spreads a herd
      this.state = "waiting";
      this._emit("close", Object.assign({}, event, {reconnectIn: delay}));
      this._timer = setTimeout(() => this._dial(generation), delay);
    }

    async request(method, path, body) {
      const url = path.startsWith("/") || /^https?:/.test(path) ? path : this.options.api + path;
      const headers = Object.assign({"Accept": "application/json"}, resolve(this.options.headers));
      const csrf = this.options.csrfCookie && typeof document !== "undefined" && readCookie(this.options.csrfCookie);
      if (csrf) headers["X-CSRFToken"] = csrf;
      const init = Object.assign({credentials: "same-origin"}, this.options.fetchOptions, {method, headers});
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const response = await fetch(url, init);
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        const detail = answer && (answer.detail || answer.code);
        const error = new Error(method + " " + url + ": " + response.status + (detail ? " " + detail : ""));
        error.status = response.status;
        error.body = answer;
        throw error;
      }
      return answer;
    }

    sendMessage(to, data, {receipt = false} = {}) {
      const entry = {key: newKey(), to: Array.isArray(to) ? to : [to], data, receipt};
      this.pending.push(entry);
      this._store(OUTBOX_KEY, JSON.stringify(this.pending));
      const answer = new Promise((resolve, reject) => this._waiting.set(entry.key, {resolve, reject}));
      this._emit("pending", Object.assign({}, entry));
      this._drainOutbox();
      return answer;
    }

    // Posts the outbox in order, one at a time, until it is empty or the server cannot be reached.
    async _drainOutbox() {
      if (this._draining) return;
      this._draining = true;
      clearTimeout(this._outboxTimer);
      try {
        while (this.pending.length) {
          const entry = this.pending[0];
          const {key, to, data, receipt} = entry;
          let answer;
          try {
            answer = await this.request("POST", "messages/", {to, data, receipt, key});
          } catch (error) {
            if (error.status === undefined || RETRIED.has(error.status)) {
              const {min, max} = this.options.backoff;
              this._outboxTimer = setTimeout(() => this._drainOutbox(), Math.min(max, min * 2 ** this._outboxAttempt++));
              return;
            }
            this._settle(entry, "unsent", {error}, (waiter) => waiter.reject(error));
            continue;
          }
          this._outboxAttempt = 0;
          this._settle(entry, "sent", {id: answer.id}, (waiter) => waiter.resolve(answer));
        }
      } finally {
        this._draining = false;
      }
    }

    _settle(entry, type, outcome, tell) {
      this.pending = this.pending.filter((other) => other.key !== entry.key);
      this._store(OUTBOX_KEY, JSON.stringify(this.pending));
      const waiter = this._waiting.get(entry.key);
      this._waiting.delete(entry.key);
      this._emit(type, Object.assign({}, entry, outcome));
      if (waiter) tell(waiter);
    }

    markRead(ids) {
      return this.request("POST", "messages/read/", {ids: Array.isArray(ids) ? ids : [ids]});
    }

    async joinChan(chan) {
      const answer = await this._chanCall(chan, "join/");
      this._joined("add", chan);
      return answer;
    }

    async leaveChan(chan) {
      this._joined("delete", chan);
      return this._chanCall(chan, "leave/");
    }

    _joined(change, chan) {
      this.joined[change](chan);
      this._store(JOINED_KEY, JSON.stringify(Array.from(this.joined)));
    }

    sendChanMessage(chan, data) {
      return this._chanCall(chan, "messages/", {data});
    }

    async chans() {
      let page = await this.request("GET", "chans/?count=10000");
      let chans = page.chans;
      while (page.next) {
        page = await this.request("GET", "chans/?count=10000&cursor=" + encodeURIComponent(page.next));
        chans = chans.concat(page.chans);
      }
      return chans;
    }

    chanMembers(chan) {
      return this.request("GET", "chans/" + encodeURIComponent(chan) + "/members/");
    }

    _chanCall(chan, action, body = {}) {
      return this.request("POST", "chans/" + encodeURIComponent(chan) + "/" + action, body);
    }
  }

  function defaultStorage() {
    try {
      return typeof sessionStorage !== "undefined" ? sessionStorage : null;
    } catch (error) {
      return null;  // sessionStorage throws where storage is disabled
    }
  }

  // An idempotency key: unique per message, so a retry is known to the server as the same message.
  function newKey() {
    const crypto = typeof globalThis !== "undefined" && globalThis.crypto;
    if (crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto && crypto.getRandomValues ? crypto.getRandomValues(new Uint8Array(16)) :
      Uint8Array.from({length: 16}, () => Math.floor(Math.random() * 256));
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  function resolve(value) {
    return typeof value === "function" ? value() : value;
  }

  // The server builds the URL from the scheme it saw; behind a TLS proxy that can be
  // ws:// on an https:// page, which the browser blocks as mixed content.
  function secureLike(url) {
    const https = typeof location !== "undefined" && location.protocol === "https:";
    return https ? url.replace(/^ws:/, "wss:") : url;
  }

  FreeIM.readCookie = readCookie;
  return FreeIM;
});
