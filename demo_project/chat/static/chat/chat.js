/* The demo chat page on freeim.js: groups, chans, private messages with receipts, presence notices, and the
   kept history (freeim.history), so a reload shows every conversation, its unread count and what still waits
   to be sent. Each tab is its own user (tab.js): freeim.js sends the tab's token with every call. */
(async function () {
  "use strict";

  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const me = await ChatTab.loggedIn();
  // The tab's token, and no cookie: the browser's session (an admin login) is never this tab's identity.
  const im = new FreeIM({meta: config.meta, headers: ChatTab.headers, fetchOptions: {credentials: "omit"}});
  const KEEP = 200;  // entries kept per conversation

  const people = new Map();         // id -> {id, name, online}
  const conversations = new Map();  // "chan:<name>" | "user:<id>" -> {chan, peer, entries, unread}
  let current = null;

  const $ = (id) => document.getElementById(id);

  // Builds DOM with textContent only: names and messages never become markup.
  function el(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }

  const nameOf = (id) => (people.get(id) || {name: "#" + id}).name;
  const textOf = (data) => (data && typeof data.text === "string" ? data.text : JSON.stringify(data));
  const time = (at) => (at ? new Date(at) : new Date()).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});

  function conversation(key) {
    if (!conversations.has(key)) {
      const [kind, target] = [key.slice(0, 4), key.slice(5)];
      const chan = kind === "chan" ? target : null;
      conversations.set(key, {chan, peer: chan === null ? Number(target) : null, entries: [], unread: 0,
                              loaded: false});
    }
    return conversations.get(key);
  }

  // A message comes once per id, whether from the history, a catch-up or live.
  function addEntry(key, fields) {
    const talk = conversation(key);
    const known = fields.id && talk.entries.find((e) => e.id === fields.id);
    if (known) return known;
    const entry = Object.assign({time: time()}, fields);
    talk.entries.push(entry);
    talk.entries.splice(0, talk.entries.length - KEEP);
    if (key === current) {
      renderLog();
      markRead(talk);
    } else {
      if (!entry.mine) talk.unread++;
      renderLists();
    }
    return entry;
  }

  function notice(text) {
    const list = $("notices");
    list.prepend(el("li", {}, el("time", {textContent: time()}), " " + text));
    while (list.children.length > 20) list.lastChild.remove();
  }

  function showError(error) {
    if (error.status === 401) ChatTab.logOut();  // the tab's login expired, or no longer works
    else notice("⚠ " + error.message);
  }

  // ---- rendering -------------------------------------------------------------------------

  let chanList = [];
  let groups = new Map();  // slug -> {slug, title, online}: persistent groups (freeim.groups), joined on connect

  function renderLists() {
    $("groups").replaceChildren(...Array.from(groups.values(), (group) => {
      const key = "chan:" + group.slug;
      return el("li", {className: listClass(key, true), onclick: () => openConversation(key)},
        el("span", {className: "name", textContent: group.title}), badge(conversations.get(key)),
        el("span", {className: "count", textContent: group.online + " online"}));
    }));
    const chans = new Map(chanList.filter((row) => !groups.has(row.chan)).map((row) => [row.chan, row.online]));
    im.joined.forEach((chan) => chans.has(chan) || chans.set(chan, 0));
    $("chans").replaceChildren(...Array.from(chans, ([chan, online]) => {
      const talk = conversations.get("chan:" + chan);
      return el("li", {className: listClass("chan:" + chan, im.joined.has(chan)), onclick: () => openChan(chan)},
        el("span", {className: "name", textContent: "#" + chan}),
        badge(talk), el("span", {className: "count", textContent: online + " online"}));
    }));
    $("users").replaceChildren(...Array.from(people.values(), (person) => {
      const mine = person.id === me.id;
      const key = "user:" + person.id;
      return el("li", {
        className: listClass(key, person.online) + (mine ? " me" : ""),
        onclick: mine ? null : () => openConversation(key),
      }, el("span", {className: "dot"}), el("span", {className: "name", textContent: person.name + (mine ? " (you)" : "")}),
      badge(conversations.get(key)));
    }));
  }

  function listClass(key, active) {
    return [active ? "active" : "", key === current ? "current" : ""].join(" ");
  }

  function badge(talk) {
    return talk && talk.unread ? el("span", {className: "badge", textContent: talk.unread}) : null;
  }

  // "pending": in freeim.js's outbox, not yet taken by the server (kept over a reload, sent when back online);
  // "sent": taken; "offline": it waits in the receiver's inbox; "delivered" follows when the receiver comes
  // back, "read" when the receiver opened the conversation. A status never goes back.
  const TICKS = {pending: "◷ pending", sent: "sent", offline: "sent · waiting", delivered: "✓", read: "✓✓",
                 unsent: "✗ not sent"};
  const RANK = {pending: 0, sent: 1, offline: 2, delivered: 3, read: 4, unsent: 5};

  // Tell the senders of the private messages shown that they were read (once each).
  function markRead(talk) {
    if (talk.chan !== null || document.hidden) return;
    const ids = talk.entries.filter((e) => e.id && !e.mine && !e.read).map((e) => e.id);
    if (!ids.length) return;
    talk.entries.forEach((e) => { if (ids.includes(e.id)) e.read = true; });
    im.markRead(ids).catch((error) => console.warn("freeim demo: markRead failed", error));
  }

  function renderLog() {
    const talk = conversations.get(current);
    $("log").replaceChildren(...talk.entries.map((entry) => el("li", {className: entry.mine ? "mine" : ""},
      el("time", {textContent: entry.time}),
      el("strong", {textContent: entry.mine ? "me" : nameOf(entry.from)}),
      el("span", {className: "text", textContent: entry.text}),
      entry.status ? el("span", {className: "tick " + entry.status, textContent: TICKS[entry.status]}) : null)));
    $("log").scrollTop = $("log").scrollHeight;
  }

  // ---- the kept history ----------------------------------------------------------------

  function fromHistory(message) {
    const mine = message.from === me.id;
    return {id: message.id, from: message.from, text: textOf(message.data), mine, time: time(message.sent_at),
            status: mine && message.chan === undefined ? (message.read_at ? "read" : "sent") : undefined,
            read: !mine && Boolean(message.read_at)};
  }

  // The newest page of a conversation, before what arrived live meanwhile (each message once).
  async function loadHistory(key, limit = 50) {
    const talk = conversation(key);
    if (talk.loaded) return;
    talk.loaded = true;
    const path = talk.chan !== null ? "chans/" + encodeURIComponent(talk.chan) : "conversations/" + talk.peer;
    let page;
    try {
      page = await im.request("GET", "history/" + path + "/?limit=" + limit);
    } catch (error) {
      talk.loaded = false;
      return showError(error);
    }
    const kept = page.results.reverse().map(fromHistory);
    const ids = new Set(kept.map((e) => e.id));
    talk.entries = kept.concat(talk.entries.filter((e) => !e.id || !ids.has(e.id))).slice(-KEEP);
  }

  // Every conversation with its unread count; those with unread messages loaded, so that the same messages
  // caught up on by a new tab are not counted twice.
  async function loadConversations() {
    let list;
    try {
      list = await im.request("GET", "history/conversations/");
    } catch (error) {
      return showError(error);
    }
    await Promise.all(list.map(async (row) => {
      const key = "user:" + row.peer;
      conversation(key).unread = row.unread;
      if (row.unread) await loadHistory(key, Math.min(200, Math.max(50, row.unread)));
    }));
    renderLists();
  }

  function openConversation(key) {
    current = key;
    const talk = conversation(key);
    talk.unread = 0;
    markRead(talk);
    const group = groups.get(talk.chan);
    const title = talk.chan !== null ? "#" + talk.chan : "Private with " + nameOf(talk.peer);
    $("title").textContent = group ? group.title : title;
    $("leave").hidden = talk.chan === null || group !== undefined;  // a group is left in the admin, not here
    const canSay = talk.chan === null || group !== undefined || im.joined.has(talk.chan);
    $("say").disabled = $("say-form").querySelector("button").disabled = !canSay;
    renderLog();
    renderLists();
    if (canSay) $("say").focus();
    if (!talk.loaded) {
      loadHistory(key).then(() => {
        if (current !== key) return;
        renderLog();
        markRead(talk);
      });
    }
  }

  // ---- data from the server --------------------------------------------------------------

  async function refreshChans() {
    try {
      [chanList, groups] = await Promise.all([im.chans(), im.request("GET", "groups/")
        .then((mine) => new Map(mine.map((group) => [group.slug, group])))]);
    } catch (error) {
      showError(error);
    }
    renderLists();
  }

  async function refreshUsers() {
    let list;
    try {
      list = await im.request("GET", "/demo/users/");
    } catch (error) {
      return showError(error);
    }
    people.clear();
    for (const person of list) people.set(person.id, person);
    renderLists();
  }

  async function openChan(chan) {
    if (!im.joined.has(chan)) {
      try {
        await im.joinChan(chan);
      } catch (error) {
        return showError(error);
      }
      refreshChans();
    }
    openConversation("chan:" + chan);
  }

  // ---- freeim events ---------------------------------------------------------------------

  im.on("chan", (frame) => {
    if (!groups.has(frame.chan) && !im.joined.has(frame.chan)) refreshChans();  // we were just added to a group
    addEntry("chan:" + frame.chan, {id: frame.id, from: frame.from, text: textOf(frame.data),
                                    mine: frame.from === me.id});
  });

  im.on("message", (frame) => {
    if (!people.has(frame.from)) refreshUsers();
    addEntry("user:" + frame.from, {id: frame.id, from: frame.from, text: textOf(frame.data)});
  });

  // A receipt names the message by the id our POST answered with; it may come before that answer.
  const earlyReceipts = new Map();  // message id -> status

  function tick(key, entry, status) {
    if (RANK[status] <= RANK[entry.status] || entry.status === "unsent") return;  // receipts come from several places: keep the best
    entry.status = status;
    if (current === key) renderLog();
  }

  // What sendMessage put in the outbox (now, or before a reload), until the server takes it.
  function pendingEntry(message) {
    if (message.to.length !== 1) return null;
    const key = "user:" + message.to[0];
    const talk = conversation(key);
    const entry = talk.entries.find((e) => e.key === message.key) ||
      addEntry(key, {key: message.key, from: me.id, text: textOf(message.data), mine: true, status: "pending"});
    return {key, talk, entry};
  }

  im.on("pending", pendingEntry);

  im.on("sent", (message) => {
    const found = pendingEntry(message);
    if (!found) return;
    const {key, talk, entry} = found;
    const twin = talk.entries.find((e) => e.id === message.id && e !== entry);  // the history had it already
    if (twin) talk.entries.splice(talk.entries.indexOf(entry), 1);
    const kept = twin || entry;
    kept.id = message.id;
    tick(key, kept, "sent");
    if (earlyReceipts.has(message.id)) tick(key, kept, earlyReceipts.get(message.id));
    earlyReceipts.delete(message.id);
    if (current === key) renderLog();
  });

  im.on("unsent", (message) => {
    const found = pendingEntry(message);
    if (found) tick(found.key, found.entry, "unsent");
    showError(message.error);
  });

  im.on("receipt", (frame) => {
    const key = "user:" + frame.to;
    const talk = conversations.get(key);
    const entry = talk && talk.entries.find((e) => e.id === frame.id);
    if (entry) tick(key, entry, frame.status);
    else if (!(RANK[earlyReceipts.get(frame.id)] >= RANK[frame.status])) earlyReceipts.set(frame.id, frame.status);
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && current) markRead(conversation(current));
  });

  im.on("gap", () => notice("some messages sent while you were away are no longer kept"));

  im.on("left", (frame) => {
    notice("you left " + frame.chan);
    if (current === "chan:" + frame.chan) openConversation(current);  // no more saying things there
    refreshChans();
  });

  im.on("broadcast", (frame) => {
    const event = frame.data || {};
    if (event.event === "online" || event.event === "offline") {
      notice((event.name || "#" + event.id) + " is " + event.event);
      refreshUsers();
    } else {
      notice("broadcast: " + textOf(frame.data));
    }
  });

  const status = (text, className) => Object.assign($("status"), {textContent: text, className: "status " + className});

  im.on("open", () => {
    status("online", "ok");
    refreshChans();
    refreshUsers();
  });
  im.on("close", (event) => {
    if (event.reconnectIn !== null) status("reconnecting in " + Math.ceil(event.reconnectIn / 1000) + " s", "warn");
    else if (event.code !== 4000) status("offline", "bad");
  });
  im.on("forced_offline", () => status("taken offline by the server", "bad"));
  im.on("error", showError);

  // ---- the page's forms ------------------------------------------------------------------

  $("me-name").textContent = me.name;
  $("admin-link").hidden = !me.is_staff;
  $("logout").addEventListener("click", () => {
    im.close();
    ChatTab.logOut();
  });

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openChan($("join-name").value.trim());
    $("join-name").value = "";
  });

  $("leave").addEventListener("click", async () => {
    const {chan} = conversations.get(current);
    try {
      await im.leaveChan(chan);
    } catch (error) {
      showError(error);
    }
    openConversation(current);
    refreshChans();
  });

  $("say-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("say").value;
    const talk = conversations.get(current);
    $("say").value = "";
    try {
      if (groups.has(talk.chan)) {
        await im.request("POST", "groups/" + encodeURIComponent(talk.chan) + "/messages/", {data: {text}});
      } else if (talk.chan !== null) {
        await im.sendChanMessage(talk.chan, {text});  // it comes back to us as a chan frame
      } else {
        im.sendMessage(talk.peer, {text}, {receipt: true}).catch(() => {});  // "sent" or "unsent" follow
      }
    } catch (error) {
      showError(error);
    }
  });

  setInterval(refreshChans, 5000);
  setInterval(refreshUsers, 15000);
  im.pending.forEach(pendingEntry);
  refreshUsers();
  loadConversations().then(() => im.connect());
})();
