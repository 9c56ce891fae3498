/* The tab's login. A browser shares its cookies, so a session would make every tab the same user (and a
   second login would silently switch the first tab). Each tab logs in on its own instead: POST /demo/login/
   answers a token, kept in this tab's sessionStorage (a reload keeps it, another tab does not see it) and
   sent as "Authorization: Bearer <token>" with every REST call (freeim.js's `headers` option).

   ChatTab.loggedIn() resolves with {id, name, is_staff} once the tab has a login: the one it kept (checked at
   /demo/me/), or the one the name form makes. ChatTab.headers() gives the tab's credential; ChatTab.logOut()
   forgets it and shows the form again (also when the server stops taking it). */
(function () {
  "use strict";

  const TOKEN = "demo.token";
  const USER = "demo.user";  // the last user of this tab (kept after a logout): see remember()
  const $ = (id) => document.getElementById(id);

  function stored(key) {
    try {
      return sessionStorage.getItem(key);
    } catch (error) {
      return null;  // storage disabled: the login lasts as long as the page
    }
  }

  function store(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch (error) { /* as in stored() */ }
  }

  let token = stored(TOKEN);

  // freeim.js keeps this tab's inbox position, joined chans and unsent messages in sessionStorage too: they
  // belong to the user who made them, so another user logging in on this tab starts with none of them.
  function remember(answer) {
    const previous = JSON.parse(stored(USER) || "null");
    if (previous && previous.id !== answer.id) {
      try {
        sessionStorage.clear();
      } catch (error) { /* as in stored() */ }
    }
    token = answer.token;
    store(TOKEN, token);
    store(USER, JSON.stringify({id: answer.id, name: answer.name, is_staff: answer.is_staff}));
  }

  async function call(method, path, body) {
    const init = {method, headers: Object.assign({"Accept": "application/json"}, ChatTab.headers()),
                  credentials: "omit"};  // the session cookie is not this tab's identity
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    return {status: response.status, body: await response.json().catch(() => null)};
  }

  function showErrors(errors) {
    document.querySelectorAll("#login-form .errorlist").forEach((list) => {
      const field = list.dataset.for;
      const messages = (errors[field] || []).concat(field === "name" && errors.detail ? [errors.detail] : []);
      list.replaceChildren(...messages.map((text) => Object.assign(document.createElement("li"), {textContent: text})));
    });
    if (errors.password) $("login-form").querySelector("details").open = true;
  }

  // The name form, until the server takes what it was given.
  function askForLogin() {
    $("chat").hidden = true;
    $("login").hidden = false;
    $("id_name").focus();
    return new Promise((resolve) => {
      $("login-form").addEventListener("submit", async function submit(event) {
        event.preventDefault();
        let answer;
        try {
          answer = await call("POST", "/demo/login/", {name: $("id_name").value, password: $("id_password").value});
        } catch (error) {
          return showErrors({detail: "The server cannot be reached: try again."});
        }
        if (answer.status !== 200) return showErrors(answer.body || {detail: "HTTP " + answer.status});
        $("login-form").removeEventListener("submit", submit);
        remember(answer.body);
        resolve(answer.body);
      });
    });
  }

  const ChatTab = {
    headers() {
      return token ? {Authorization: "Bearer " + token} : {};
    },

    async loggedIn() {
      let me = null;
      if (token) {
        try {
          const answer = await call("GET", "/demo/me/");
          if (answer.status === 200) me = answer.body;
          else if (answer.status === 401 || answer.status === 403) token = null;  // expired, or revoked
          else me = JSON.parse(stored(USER));
        } catch (error) {
          me = JSON.parse(stored(USER));  // the server is away: it will be asked again by the chat
        }
      }
      if (me === null) me = await askForLogin();
      $("login").hidden = true;
      $("chat").hidden = false;
      return me;
    },

    // Keeps USER, so that logging in again as the same user finds what the tab still had to send.
    logOut() {
      store(TOKEN, null);
      location.reload();
    },
  };

  window.ChatTab = ChatTab;
})();
