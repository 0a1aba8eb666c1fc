// The console's only script (no build step, no dependencies). Text from customers is only ever
// set with textContent, never as HTML.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function toast(text, bad) {
    var box = document.getElementById("toast");
    var item = document.createElement("div");
    item.className = "msg" + (bad ? " bad" : "");
    item.textContent = text;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, bad ? 12000 : 5000);
  }

  function api(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.message || ("The console answered " + response.status + ". Reload the page and try again.")); }
        return data;
      });
    });
  }

  function minutes(since) { return Math.max(0, Math.floor((Date.now() / 1000 - since) / 60)) + " min"; }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // --- claiming (queue and conversation pages) ---------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.claim");
    if (!button) { return; }
    button.disabled = true;
    api("/api/claim", { conversation_id: button.dataset.conversation, team: button.dataset.team }).then(function (data) {
      if (data.intro && data.intro.status === "failed") { toast("Taken, but your greeting was not delivered: " + data.intro.reason, true); }
      window.location.href = "/conversations/" + encodeURIComponent(button.dataset.conversation);
    }).catch(function (error) { button.disabled = false; toast(error.message, true); });
  });

  // --- presence ----------------------------------------------------------------------------
  var presence = document.getElementById("presence");
  if (presence) {
    presence.addEventListener("click", function () {
      var next = presence.dataset.status === "online" ? "away" : "online";
      api("/api/presence", { status: next }).then(function (data) {
        presence.dataset.status = data.status;
        presence.textContent = data.status === "online" ? "Online" : "Away";
        presence.setAttribute("aria-pressed", data.status === "online" ? "true" : "false");
      }).catch(function (error) { toast(error.message, true); });
    });
  }

  // --- queue page --------------------------------------------------------------------------
  var queuePage = document.getElementById("queue-page");
  var triggerNames = {};
  try { triggerNames = JSON.parse((document.getElementById("trigger-names") || {}).textContent || "{}"); } catch (e) { triggerNames = {}; }

  function renderQueue(state) {
    state.teams.forEach(function (team) {
      var table = queuePage.querySelector('table[data-team="' + team.id + '"] tbody');
      var count = queuePage.querySelector('[data-team-count="' + team.id + '"]');
      if (!table) { return; }
      if (count) { count.textContent = team.waiting.length + " waiting"; }
      table.textContent = "";
      if (!team.waiting.length) {
        var empty = el("tr", "empty"); var cell = el("td", "", "No one is waiting."); cell.colSpan = 5; empty.appendChild(cell); table.appendChild(empty);
      }
      team.waiting.forEach(function (h) {
        var row = el("tr"); row.dataset.conversation = h.conversation_id;
        var wait = el("td", "wait", minutes(h.requested_at)); wait.dataset.since = h.requested_at; row.appendChild(wait);
        row.appendChild(el("td", "", (h.ticket ? "ticket · " : "") + (triggerNames[h.trigger] || h.trigger)));
        row.appendChild(el("td", "", h.channel));
        row.appendChild(el("td", "reason", h.reason));
        var cell = el("td"); var take = el("button", "claim", "Take"); take.type = "button";
        take.dataset.conversation = h.conversation_id; take.dataset.team = team.id; cell.appendChild(take); row.appendChild(cell);
        table.appendChild(row);
      });
    });
    var mine = document.getElementById("mine");
    var mineCount = document.getElementById("mine-count");
    if (mineCount) { mineCount.textContent = state.mine.length + " of " + state.limit; }
    if (mine) {
      mine.textContent = "";
      if (!state.mine.length) { mine.appendChild(el("li", "empty", "None yet. Take one from a queue below.")); }
      state.mine.forEach(function (h) {
        var item = el("li"); var link = el("a", "", h.conversation_id); link.href = "/conversations/" + encodeURIComponent(h.conversation_id);
        item.appendChild(link); item.appendChild(document.createTextNode(" ")); item.appendChild(el("span", "meta", h.channel + " · " + h.reason));
        mine.appendChild(item);
      });
    }
  }

  if (queuePage) {
    var feed = new EventSource("/api/live");
    feed.addEventListener("queue", function (event) { renderQueue(JSON.parse(event.data)); });
    setInterval(function () {
      Array.prototype.forEach.call(document.querySelectorAll("td.wait"), function (cell) { cell.textContent = minutes(parseFloat(cell.dataset.since)); });
    }, 15000);
  }

  // --- conversation page -------------------------------------------------------------------
  var page = document.getElementById("conversation-page");
  if (!page) { return; }
  var conversation = page.dataset.conversation;
  var transcript = document.getElementById("transcript");
  var labels = { customer: "Customer", bot: "Bot", agent: "Agent", system: "System", note: "Internal note", undelivered: "Not delivered" };

  function addLine(line) {
    var item = el("li", line.who);
    var who = labels[line.who] || line.who;
    if (line.author) { who = line.author + (line.who === "agent" ? " (agent)" : ""); }
    if (line.channel && line.who === "customer") { who += " · " + line.channel; }
    item.appendChild(el("span", "who", who));
    item.appendChild(document.createTextNode(line.text || ""));
    if (line.buttons && line.buttons.length) { item.appendChild(el("span", "meta", " [" + line.buttons.join(" | ") + "]")); }
    if (line.reason) { item.appendChild(el("span", "who", line.reason)); }
    transcript.appendChild(item);
    transcript.scrollTop = transcript.scrollHeight;
  }

  try { JSON.parse(document.getElementById("transcript-data").textContent || "[]").forEach(addLine); } catch (e) { toast("The transcript could not be shown; reload the page.", true); }

  var live = new EventSource("/api/live?conversation=" + encodeURIComponent(conversation) + "&since=" + encodeURIComponent(page.dataset.since || ""));
  live.addEventListener("line", function (event) { addLine(JSON.parse(event.data)); });
  live.addEventListener("state", function (event) {
    if (event.data === "handover_transferred" || event.data === "handover_claimed") { toast("The conversation changed hands; reload to see who owns it."); }
  });

  var notes = document.getElementById("notes");
  var noteForm = document.getElementById("note-form");
  if (noteForm) {
    noteForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var box = document.getElementById("note");
      api("/api/conversations/" + encodeURIComponent(conversation) + "/notes", { text: box.value }).then(function (note) {
        var item = el("li"); item.appendChild(el("strong", "", note.name)); item.appendChild(document.createTextNode(": " + note.text));
        notes.appendChild(item); box.value = "";
      }).catch(function (error) { toast(error.message, true); });
    });
  }

  var replyForm = document.getElementById("reply-form");
  if (!replyForm) { return; }
  var replyBox = document.getElementById("reply");
  function sendReply() {
    var text = replyBox.value;
    if (!text.trim()) { return; }
    var button = replyForm.querySelector('button[type="submit"]');
    button.disabled = true;
    api("/api/conversations/" + encodeURIComponent(conversation) + "/reply", { text: text }).then(function (data) {
      replyBox.value = "";
      if (data.status === "queued") { toast("Saved: the customer is not connected now and gets it when they come back."); }
    }).catch(function (error) { toast(error.message, true); }).then(function () { button.disabled = false; replyBox.focus(); });
  }
  replyForm.addEventListener("submit", function (event) { event.preventDefault(); sendReply(); });
  replyBox.addEventListener("keydown", function (event) { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); sendReply(); } });

  var cannedBox = document.getElementById("canned-q");
  var canned = document.getElementById("canned");
  var timer = null;
  cannedBox.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = cannedBox.value.trim();
      canned.textContent = "";
      if (!q) { return; }
      fetch("/api/canned?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (d) { if (!r.ok) { throw new Error(d.message); } return d; }); })
        .then(function (data) {
          data.answers.forEach(function (answer) {
            var item = el("li"); var pick = el("button", "", answer.question + " (" + answer.score + ")"); pick.type = "button";
            pick.addEventListener("click", function () {
              replyBox.value = answer.answer + (answer.url ? "\n" + answer.url : ""); replyBox.focus(); canned.textContent = "";
            });
            item.appendChild(pick); canned.appendChild(item);
          });
          if (!data.answers.length) { canned.appendChild(el("li", "hint", "No FAQ entry matches.")); }
        }).catch(function (error) { toast(error.message, true); });
    }, 250);
  });

  function finish(path, body, done) {
    api("/api/conversations/" + encodeURIComponent(conversation) + path, body).then(function (data) {
      if (data.resumed && data.resumed.status === "failed") { toast("Handed back, but the customer did not get the notice: " + data.resumed.reason, true); }
      toast(done);
      setTimeout(function () { window.location.href = "/queue"; }, 800);
    }).catch(function (error) { toast(error.message, true); });
  }
  document.getElementById("resolve").addEventListener("click", function () {
    finish("/resolve", { outcome: document.getElementById("outcome").value }, "Resolved. The customer gets the satisfaction question.");
  });
  document.getElementById("handback").addEventListener("click", function () { finish("/handback", {}, "Handed back to the bot."); });
  document.getElementById("do-transfer").addEventListener("click", function () {
    var choice = document.getElementById("transfer").value;
    if (!choice) { toast("Choose a team or a colleague first.", true); return; }
    var parts = choice.split(":");
    var body = parts[0] === "team" ? { to_team: parts[1] } : { to_agent: parts[1] };
    finish("/transfer", body, "Transferred.");
  });
})();
