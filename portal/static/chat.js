// The chat page's behaviour (portal/templates/chat.html): live messages over Server-Sent Events, sending, the
// newest message kept in view, "typing…" and the photo placeholder, and a live region for Ava's new messages.
// Loaded with the page's CSP nonce. Message text is only ever set as textContent: it is never parsed as HTML.
(() => {
  "use strict";
  const messages = document.getElementById("messages");
  const form = document.getElementById("composer");
  if (!messages || !form) return;
  const input = document.getElementById("message-input");
  const statusLine = document.getElementById("status");
  const typing = document.querySelector("[data-role=typing]");
  const pill = document.querySelector("[data-role=new-messages]");
  const announcer = document.getElementById("announcer");
  const hint = document.getElementById("composer-hint");
  const faceTemplate = document.getElementById("face-template");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const name = messages.dataset.name || "Ava";

  //: Typing events repeat every few seconds while Ava works; without one for this long the indicator goes.
  const TYPING_MS = 12000;
  //: A photo placeholder without news (activity or retry) for this long is dropped (the notice will still come).
  const PHOTO_IDLE_MS = 45000;
  const RETRY_IDLE_MS = 90000;
  //: Within this many pixels of the bottom the reader is "at the newest message".
  const NEAR_BOTTOM = 48;
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  const seen = new Set(Array.from(messages.querySelectorAll(".msg[data-id]"), (e) => Number(e.dataset.id)));
  const root = document.scrollingElement || document.documentElement;
  const desktop = window.matchMedia("(hover: hover) and (pointer: fine) and (min-width: 641px)");
  let following = true;
  let typingTimer = null;

  // -- small helpers -------------------------------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "attrs") for (const [a, v] of Object.entries(value)) node.setAttribute(a, v);
      else node[key] = value;
    }
    node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  const newId = () =>
    Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const safeUrl = (u) => (typeof u === "string" && (/^https?:\/\//i.test(u) || /^\/(?!\/)/.test(u)) ? u : null);
  const pad = (n) => String(n).padStart(2, "0");
  const dayStart = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();

  // Same rules as portal/chat_view.py message_time, in the reader's time zone.
  function timeLabel(iso, now = new Date()) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return "";
    const clock = `${pad(when.getHours())}:${pad(when.getMinutes())}`;
    const days = Math.round((dayStart(now) - dayStart(when)) / 86400000);
    if (days <= 0) return clock;
    if (days === 1) return `Yesterday, ${clock}`;
    const date = `${when.getDate()} ${MONTHS[when.getMonth()]}`;
    return when.getFullYear() === now.getFullYear() ? `${date}, ${clock}` : `${date} ${when.getFullYear()}`;
  }

  function relabelTimes() {
    const now = new Date();
    for (const node of messages.querySelectorAll("time.sent-at[datetime]")) {
      const label = timeLabel(node.getAttribute("datetime"), now);
      if (label) node.textContent = label;
    }
  }

  // -- scrolling: open at the newest message, follow new ones unless the reader scrolled up ---------------------

  const atBottom = () => root.scrollHeight - (root.scrollTop + window.innerHeight) <= NEAR_BOTTOM;

  function toBottom() {
    window.scrollTo({ top: root.scrollHeight, behavior: "instant" });  // never smooth: it would read as scrolling up
    following = true;
    pill.hidden = true;
  }

  function showPill() {
    pill.hidden = false;
  }

  window.addEventListener("scroll", () => {
    following = atBottom();
    if (following) pill.hidden = true;
  }, { passive: true });
  // Whatever grows while the reader follows (a photo decoding, the typing line, a longer message box): stay down.
  new ResizeObserver(() => { if (following) toBottom(); }).observe(document.body);
  pill.addEventListener("click", toBottom);

  // -- rendering ------------------------------------------------------------------------------------------------

  function textNodes(parts, fallback) {
    const list = Array.isArray(parts) && parts.length ? parts : [{ text: fallback || "" }];
    return list.map((part) => {
      const href = part.href ? safeUrl(part.href) : null;
      return href ? el("a", { href, rel: "noopener noreferrer", textContent: part.text }) : document.createTextNode(part.text);
    });
  }

  function face() {
    return faceTemplate ? faceTemplate.content.firstElementChild.cloneNode(true) : null;
  }

  function choiceButton(c, state, chosen) {
    const picked = chosen === c.data;
    const button = el("button", {
      type: "submit", name: "choice", value: c.data, disabled: state !== "open",
      className: picked ? "chosen" : "", dataset: { choice: c.data },
    });
    if (picked) button.append(el("span", { textContent: "✓ ", attrs: { "aria-hidden": "true" } }));
    button.append(c.label);
    if (picked) button.append(el("span", { className: "visually-hidden", textContent: " (your answer)" }));
    return button;
  }

  function choicesBlock(p, state, chosen) {
    const group = el("div", { className: "choices", dataset: { state }, attrs: { role: "group", "aria-label": "Answers" } });
    for (const c of p.choices || []) {
      group.append(el("form", { className: "choice", method: "post", action: "/chat/messages" }, choiceButton(c, state, chosen)));
    }
    return group;
  }

  // One message as the template's `show` macro renders it.
  function render(m) {
    const ava = m.direction === "out";
    const p = m.payload || { type: "text", text: m.text || "" };
    const box = el("div", { className: "msg " + (ava ? "out" : "in"), dataset: { direction: ava ? "out" : "in" } });
    if (m.id) box.dataset.id = m.id;
    if (m.photo_notice) box.dataset.photoNotice = "";
    const bubble = el("div", { className: "bubble" }, el("span", { className: "visually-hidden", textContent: (ava ? name : "You") + ":" }));
    if (p.type === "photo" && safeUrl(p.url)) {
      const img = el("img", { src: safeUrl(p.url), alt: p.text || `A photo from ${name}`, loading: "lazy", decoding: "async" });
      img.width = p.width || 832;
      img.height = p.height || 1248;
      const link = el("a", { className: "photo-link", href: safeUrl(p.page) || safeUrl(p.url) }, img);
      bubble.append(el("figure", { className: "chat-photo" }, link, p.text ? el("figcaption", {}, ...textNodes(m.parts, p.text)) : null));
    } else {
      bubble.append(el("p", { className: "text" }, ...textNodes(m.parts, p.text || m.text)));
    }
    if (p.type === "choices") bubble.append(choicesBlock(p, m.choice_state || "open", m.chosen || null));
    else if (p.type === "link" && safeUrl(p.url)) {
      bubble.append(el("a", { className: "button", href: safeUrl(p.url), rel: "noopener noreferrer", textContent: p.label }));
    }
    const at = m.at || new Date().toISOString();
    bubble.append(el("time", { className: "sent-at", dateTime: at, textContent: timeLabel(at) }));
    if (ava) box.append(face());
    box.append(bubble);
    return box;
  }

  // Adds a message at the end (before a photo placeholder, which stays last); follows it or offers the pill.
  function add(node, own) {
    const follow = own || following || atBottom();
    const card = placeholder.node;
    if (card && card.isConnected) messages.insertBefore(node, card);
    else messages.append(node);
    if (follow) toBottom();
    else showPill();
  }

  // -- choice sets: only the newest open set is enabled ----------------------------------------------------------

  function closeSets(except, state = "passed") {
    for (const group of messages.querySelectorAll(".choices[data-state=open]")) {
      if (group === except) continue;
      group.dataset.state = state;
      group.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    }
  }

  function markChosen(group, button) {
    group.dataset.state = "answered";
    group.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    button.classList.add("chosen");
    button.prepend(el("span", { textContent: "✓ ", attrs: { "aria-hidden": "true" } }));
    button.append(el("span", { className: "visually-hidden", textContent: " (your answer)" }));
  }

  function reopen(group, button) {
    group.dataset.state = "open";
    button.classList.remove("chosen");
    button.querySelectorAll("span").forEach((s) => s.remove());
    group.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }

  // -- waiting: typing line and the photo placeholder card ---------------------------------------------------------

  function hideTyping() {
    clearTimeout(typingTimer);
    typing.hidden = true;
  }

  function showTyping() {
    clearTimeout(typingTimer);
    const follow = following || atBottom();
    typing.hidden = false;
    typingTimer = setTimeout(hideTyping, TYPING_MS);
    if (follow) toBottom();
  }

  const placeholder = { node: null, started: 0, ticker: null, idle: null, retrying: false };

  function elapsed(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }

  function tick() {
    if (!placeholder.node) return;
    placeholder.node.querySelector("[data-role=elapsed]").textContent = elapsed(Date.now() - placeholder.started);
  }

  function endPlaceholder() {
    clearInterval(placeholder.ticker);
    clearTimeout(placeholder.idle);
    if (placeholder.node) placeholder.node.remove();
    Object.assign(placeholder, { node: null, started: 0, ticker: null, idle: null, retrying: false });
  }

  function photoActivity(retrying) {
    if (!placeholder.node) {
      const status = el("span", { dataset: { role: "photo-status" } });
      const card = el("div", { className: "msg out photo-card", dataset: { role: "photo-placeholder", direction: "out" } },
        face(),
        el("div", { className: "bubble" },
          el("div", { className: "photo-frame", attrs: { "aria-hidden": "true" } }),
          el("p", { className: "text" }, status, " ", el("span", { className: "elapsed", dataset: { role: "elapsed" } }))));
      placeholder.node = card;
      placeholder.started = Date.now();
      placeholder.ticker = setInterval(tick, 1000);
      const follow = following || atBottom();
      messages.append(card);
      if (follow) toBottom();
    }
    placeholder.retrying = placeholder.retrying || retrying;
    placeholder.node.querySelector("[data-role=photo-status]").textContent =
      placeholder.retrying ? "Still trying to take the photo…" : "Taking a photo…";
    placeholder.node.dataset.state = placeholder.retrying ? "retrying" : "taking";
    tick();
    clearTimeout(placeholder.idle);
    placeholder.idle = setTimeout(endPlaceholder, placeholder.retrying ? RETRY_IDLE_MS : PHOTO_IDLE_MS);
  }

  // -- the live region: only new messages from Ava ---------------------------------------------------------------

  function announce(m) {
    const p = m.payload || {};
    const text = p.type === "photo" ? `${name} sent a photo${p.text ? ": " + p.text : ""}` : `${name}: ${p.text || m.text || ""}`;
    announcer.append(el("p", { textContent: text }));
    while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
  }

  // -- sending --------------------------------------------------------------------------------------------------

  function showError(err, status) {
    statusLine.textContent = err.error || `Could not send (${status}).`;
    const link = safeUrl(err.subscribe_url);
    if (link) statusLine.append(" ", el("a", { href: link, textContent: "Subscribe" }));
  }

  // Posts with one client_id for all attempts: the server stores a retried message once. True when stored.
  async function post(fields) {
    const body = JSON.stringify({ ...fields, client_id: newId() });
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const r = await fetch("/chat/messages", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body,
        });
        if (r.status === 401) { window.location.href = "/signin"; return false; }
        if (r.ok) { statusLine.textContent = ""; return true; }
        showError(await r.json().catch(() => ({})), r.status);
        if (r.status < 500) return false;
      } catch (e) {
        statusLine.textContent = "Connection problem, retrying…";
      }
      await new Promise((done) => setTimeout(done, 1000 * 2 ** attempt));
    }
    return false;
  }

  function resize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    resize();
    closeSets(null);  // a typed answer passes the open question
    const bubble = render({ direction: "in", text, payload: null, parts: null });
    add(bubble, true);
    if (!(await post({ text }))) bubble.classList.add("failed");
  });

  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && desktop.matches) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", resize);

  function updateMode() {
    form.classList.toggle("enter-sends", desktop.matches);
    if (hint) hint.textContent = desktop.matches ? "Enter sends; Shift+Enter starts a new line." : "Use the Send button to send.";
  }
  updateMode();
  desktop.addEventListener("change", updateMode);

  messages.addEventListener("submit", async (ev) => {
    const f = ev.target;
    if (!f.classList || !f.classList.contains("choice")) return;
    ev.preventDefault();
    const button = ev.submitter || f.querySelector("button");
    const group = f.closest(".choices");
    if (!button || button.disabled || !group) return;
    const label = button.textContent;
    markChosen(group, button);
    closeSets(group);
    const bubble = render({ direction: "in", text: label, payload: null, parts: null });
    add(bubble, true);
    if (await post({ choice: button.value })) return;
    bubble.classList.add("failed");
    if (!messages.querySelector(".choices[data-state=open]")) reopen(group, button);  // not stored: still open
  });

  // -- the live stream ------------------------------------------------------------------------------------------

  function received(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    if (m.direction === "out") hideTyping();
    const node = render(m);
    const p = m.payload || {};
    if (p.type === "choices") closeSets(null);
    if (m.photo_notice || p.type === "photo") {
      const card = placeholder.node;
      if (card && card.isConnected) card.replaceWith(node);  // the photo (or the notice) takes the card's place
      endPlaceholder();
    }
    if (!node.isConnected) add(node, false);
    else if (following || atBottom()) toBottom();
    else showPill();
    if (m.direction === "out") announce(m);
  }

  const events = new EventSource("/chat/events?after=" + encodeURIComponent(messages.dataset.after || "0"));
  events.onopen = () => { statusLine.textContent = ""; };
  events.onerror = () => {
    statusLine.textContent = events.readyState === EventSource.CLOSED ? "Live updates stopped: reload the page." : "Reconnecting…";
  };
  events.onmessage = (ev) => {
    let m = null;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m && typeof m.id === "number") received(m);
  };
  // Activity events carry no id, so they never move Last-Event-ID; they are hints only.
  events.addEventListener("activity", (ev) => {
    let data = null;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    const kind = data && data.kind;
    if (kind === "typing") showTyping();
    else if (kind === "upload_photo") photoActivity(false);
    else if (kind === "photo_retry") photoActivity(true);
  });

  // -- opening ---------------------------------------------------------------------------------------------------

  if ("scrollRestoration" in history) history.scrollRestoration = "manual";
  relabelTimes();
  if (!typing.hidden) typingTimer = setTimeout(hideTyping, TYPING_MS);
  toBottom();
  window.addEventListener("load", () => { if (following) toBottom(); });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) toBottom(); });
})();
