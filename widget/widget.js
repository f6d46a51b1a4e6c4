/*! Teaser widget: shows one short message in the chat bubble of this visitor's tab.
 * Embed: <script src="https://teaser.example.com/widget.js" data-site-id="SITE" async></script>
 * Optional: data-endpoint, data-poll-interval (ms), data-debug. No dependencies, no build step. */
(function () {
  'use strict';
  if (window.TeaserWidget && window.TeaserWidget.transport !== 'closed') return; // tag pasted twice

  var PREFIX = '[AI PRL Assist]';
  var PARAMS = 'utm_source utm_medium utm_campaign utm_term utm_content'.split(' ');
  var SEEN_MAX = 200;
  var WS_TIMEOUT = 60000; // no frame at all for this long: the socket is dead
  var WS_OPEN_TIMEOUT = 10000;
  var WS_STABLE = 10000; // open this long, a drop starts the backoff anew
  var BACKOFF_MIN = 1000;
  var BACKOFF_MAX = 60000;
  var REFUSED_MIN = 60000;
  var REFUSED_MAX = 1800000;
  var HIDDEN_SLOWDOWN = 4;
  var LONG_WAIT = 25000; // under the 30 s after which many proxies cut a silent answer
  var POLL_MARGIN = 10000; // a held poll unanswered this long past its wait is given up on

  // ---- configuration, read once ----
  var script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-site-id]');
  var data = (script && script.dataset) || {};
  var siteId = data.siteId || '';
  var endpoint = (data.endpoint || (script && script.src ? new URL('.', script.src).href : location.origin))
    .replace(/\/+$/, '');
  var configuredInterval = Math.max(0, parseInt(data.pollInterval, 10) || 0);
  var debug = data.debug !== undefined && data.debug !== 'false';

  function info(text) { if (debug) console.log(PREFIX + ' ' + text); }
  function warn(text) { console.warn(PREFIX + ' ' + text); }
  var warned = {};
  function warnOnce(key, text) { if (!warned[key]) { warned[key] = true; warn(text); } }

  // sessionStorage throws in some privacy modes and sandboxed iframes.
  function load(key) { try { return sessionStorage.getItem(key); } catch (e) { return null; } }
  function save(key, value) { try { sessionStorage.setItem(key, value); } catch (e) { /* see load */ } }

  function randomId() {
    var out = '';
    // & 31: no bias
    crypto.getRandomValues(new Uint8Array(9)).forEach(function (b) { out += (b & 31).toString(32); });
    return 'sess_' + Date.now() + '_' + out;
  }

  // Full jitter: spreads the reconnects of many tabs after a restart.
  function backoff(step, min, max) {
    min = min || BACKOFF_MIN;
    max = max || BACKOFF_MAX;
    var span = Math.min(max, min * Math.pow(2, Math.min(step, 31)));
    return Math.min(max, min + Math.floor(Math.random() * span));
  }

  function describeError(response, body) {
    var e = body && body.error;
    return response.status + (e ? ' ' + (e.code || '') + ': ' + (e.message || '') : '');
  }

  function postJSON(path, body, signal) {
    return fetch(endpoint + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
      signal: signal
    });
  }
  function bodyOf(response) { return response.json().catch(function () { return null; }); }

  var sessionKey = 'teaser:session:' + siteId;
  // The server-minted id and token (which alone reads the session), and the last seq seen: for the tab's life.
  var stored = null;
  try { stored = JSON.parse(load(sessionKey)); } catch (e) { /* absent or corrupt: open anew */ }
  var sessionId = stored && stored.id || null;
  var token = stored && stored.token || null;
  var lastSeq = stored && stored.seq || 0;
  var reopened = false;
  var resuming = false; // after a switch or a failure, polls send `since` until one is answered

  // for the socket, each poll and each event
  function who(since) {
    return { sessionId: sessionId, siteId: siteId, path: location.pathname, token: token || undefined,
      since: since || undefined };
  }

  function keepSession() { save(sessionKey, JSON.stringify({ id: sessionId, token: token, seq: lastSeq })); }

  function openSession(done) {
    postJSON('/api/sessions', { siteId: siteId })
      .then(function (response) {
        return bodyOf(response).then(function (body) {
          if (!response.ok || !body) throw new Error(refusal(body) ? '' : describeError(response, body));
          sessionId = body.sessionId;
          token = body.token;
        });
      })
      .catch(function (error) {
        // Servers that do not require tokens still deliver to a session named here.
        if (!refusals) warn('Could not open a session (' + error.message + '); continuing without a token');
        sessionId = randomId();
        token = null;
      })
      .then(function () { lastSeq = 0; keepSession(); done(); });
  }

  // A token the server no longer accepts (its secret changed): start a new session, once.
  function tokenRefused(body) {
    if (reopened || !(body && body.error && body.error.code === 'invalid_session_token')) return false;
    reopened = true;
    openSession(function () { if (socket) { socket.close(); socket = null; } connect(); });
    return true;
  }

  // A page refused for good (origin not allowed, no such site) waits for an operator: no socket or
  // events, and the poll asks again 1 minute doubling to 30, so an open tab recovers.
  var PERMANENT = { origin_not_allowed: 1, unknown_site: 1 };
  var refusals = 0; // in a row; 0 while accepted

  function refusal(body) {
    var e = body && body.error;
    if (!e || !PERMANENT[e.code]) return false;
    if (!refusals++) {
      // The command comes last, whole, ready to copy.
      warn('Teaser refuses this page (' + e.code + ': ' + e.message + '); asking again every few minutes. ' +
        (e.code === 'unknown_site' ? 'Check data-site-id, or create the site: teaser site add ' + siteId
          : 'To allow this page, run: teaser site origins ' + siteId + ' --add ' + location.origin));
      clearTimeout(reconnectTimer);
      if (socket) { socket.close(); socket = null; }
      setState(State.REFUSED);
      if (sessionId) startPolling(); // else start() will
    }
    return true;
  }

  // ---- transports: { supported(), open({ onOpen, onFrame, onClose, onPoll }), send(frame), close() } ----

  function webSocketTransport() {
    var socket = null;
    var timer = null;
    var callbacks = null;
    // (JSON drops what is undefined)
    var url = endpoint.replace(/^http/, 'ws') + '/api/teaser-ws?' +
      new URLSearchParams(JSON.parse(JSON.stringify(who(lastSeq))));

    function detach() {
      clearTimeout(timer);
      if (socket) {
        socket.onmessage = socket.onclose = null;
        // Closing a socket still connecting makes the browser warn: close it once open.
        socket.onopen = function () { this.close(); };
        if (socket.readyState !== 0) socket.close();
      }
      socket = null;
    }
    function fail() { if (socket) { detach(); callbacks.onClose(); } }
    // Half-open TCP never fires onclose: silence past the deadline is a drop.
    function expireIn(ms) { clearTimeout(timer); timer = setTimeout(fail, ms); }

    return {
      supported: function () { return typeof WebSocket === 'function'; },
      open: function (cb) {
        callbacks = cb;
        try { socket = new WebSocket(url); } catch (e) { warn('WebSocket failed: ' + e.message); return setTimeout(cb.onClose); }
        expireIn(WS_OPEN_TIMEOUT);
        socket.onopen = function () { expireIn(WS_TIMEOUT); cb.onOpen(); };
        socket.onclose = fail;
        socket.onmessage = function (event) {
          expireIn(WS_TIMEOUT);
          var frame;
          try { frame = JSON.parse(event.data); } catch (e) { return warn('Ignored a frame that is not JSON'); }
          cb.onFrame(frame);
        };
      },
      send: function (frame) {
        if (socket && socket.readyState === 1) socket.send(JSON.stringify(frame));
      },
      close: detach
    };
  }

  // Long-polling: the server holds a poll until a teaser is there; the next goes once it answers.
  // Two held polls failing, a short poll answered between them: something cuts long requests, so
  // plain polls for the page's life. A held poll must be cancellable: it needs AbortController.
  var longPolls = typeof AbortController === 'function';
  var strikes = 0;

  function pollingTransport() {
    var timer = null;
    var active = false;
    var inFlight = false;
    var again = false;
    var serverInterval = 8000;
    var failures = 0;
    var early = 0; // held polls in a row answered early with nothing
    var waitAtLeast = 0; // ms a 429 or 503 asked for (Retry-After)
    var held = null; // the held poll's AbortController
    var callbacks = null;

    function hidden() { return document.visibilityState === 'hidden'; }
    function interval() { return (configuredInterval || serverInterval) * (hidden() ? HIDDEN_SLOWDOWN : 1); }
    function schedule(ms) { clearTimeout(timer); if (active) timer = setTimeout(poll, ms); }
    function cancel() { if (held) { held.abort(); held = null; } } // catch() runs after this

    function poll() {
      if (inFlight) { again = true; return; }
      inFlight = true;
      waitAtLeast = 0;
      // Hidden tabs poll plainly: a browser has 6 HTTP/1.1 connections per host for all tabs, and
      // held polls in hidden ones would stall the visible one. After a switch or failure, 1 ms: an
      // answer at once, saying whether the server long-polls.
      var wait = !longPolls || hidden() ? 0 : resuming ? 1 : LONG_WAIT;
      var sentAt = Date.now();
      var next = false;
      var control = held = wait > 1 ? new AbortController() : null;
      var limit = control && setTimeout(function () { control.abort(Error('no answer in time')); },
        wait + POLL_MARGIN);
      info('🔄 Polling for teaser messages...');
      var cb = callbacks;
      function polled(ok, count) { cb.onPoll({ ok: ok, count: count, at: new Date() }); }
      postJSON('/api/teaser-messages', Object.assign(who(resuming && lastSeq), { wait: wait || undefined }),
        control && control.signal)
        .then(function (response) {
          // A 429 or 503 says how long to wait (capped at ten minutes).
          waitAtLeast = Math.min(600, +response.headers.get('Retry-After') || 0) * 1000;
          return bodyOf(response).then(function (body) {
            if (response.ok) return body || {};
            if (tokenRefused(body)) return {};
            if (refusal(body)) return null;
            throw new Error(describeError(response, body));
          });
        })
        .then(function (body) {
          if (!body) return polled(false, 0);
          if (refusals) { refusals = 0; info('Accepted again'); cb.onOpen(); connect(); }
          failures = 0;
          if (control) strikes = 0;
          delete warned.poll;
          resuming = false;
          if (body.pollInterval > 0) serverInterval = body.pollInterval;
          var messages = body.messages || [];
          if (!messages.length) info('📭 No new teaser messages');
          // A newer poll of the session ends a held one: two tabs of a session must not ping-pong.
          early = !messages.length && Date.now() - sentAt < body.wait - 1000 ? early + 1 : 0;
          next = body.wait > 0 && early < 2;
          // Delivered even after close(): the server has handed these over.
          messages.forEach(function (m) { cb.onFrame(Object.assign({ type: 'teaser' }, m)); });
          polled(true, messages.length);
        })
        .catch(function (error) {
          resuming = true; // its answer may be lost: ask for it again
          if (held !== control) return; // cancelled: hidden, or the socket opened
          failures++;
          // A short poll failing too: the server is away, not cutting.
          strikes = control && !waitAtLeast ? strikes + 1 : 0;
          if (strikes > 1) longPolls = false;
          warnOnce('poll', 'Polling failed: ' + error.message);
          polled(false, 0);
        })
        .then(function () {
          clearTimeout(limit);
          held = null;
          inFlight = false;
          schedule(refusals ? backoff(refusals - 1, REFUSED_MIN, REFUSED_MAX)
            : (again || next) && !waitAtLeast ? 0
            : Math.max(interval(), waitAtLeast, failures ? backoff(failures - 1) : 0));
          again = false;
        });
    }
    // Back in view, at once and with `since` (the held poll cancelled may yet take a teaser).
    function onVisibility() { if (!refusals) { if (hidden()) cancel(); else { resuming = true; schedule(0); } } }

    return {
      supported: function () { return typeof fetch === 'function'; },
      open: function (cb) {
        callbacks = cb;
        active = true;
        document.addEventListener('visibilitychange', onVisibility);
        cb.onOpen();
        poll();
      },
      send: function () { /* the poll response is the acknowledgement */ },
      close: function () {
        active = false;
        clearTimeout(timer);
        cancel();
        document.removeEventListener('visibilitychange', onVisibility);
      }
    };
  }

  // ---- the teaser bubble, isolated in a shadow root ----
  var CSS =
    '.b{position:relative;box-sizing:border-box;width:max-content;max-width:min(320px,calc(100vw - 32px));' +
    'margin:0;padding:12px 36px 12px 16px;background:#fff;color:#1f2328;border-radius:16px 16px 4px 16px;' +
    'box-shadow:0 6px 24px rgba(0,0,0,.18),0 0 0 1px rgba(0,0,0,.06);' +
    'font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;transform-origin:100% 100%}' +
    '.m{all:unset;display:block;cursor:pointer;white-space:pre-wrap;overflow-wrap:anywhere}' +
    '.x{all:unset;position:absolute;top:6px;right:6px;width:24px;height:24px;border-radius:50%;' +
    'text-align:center;font:18px/24px sans-serif;color:#57606a;cursor:pointer}' +
    '.x:hover{background:#eef0f2}.m:focus-visible,.x:focus-visible{outline:2px solid #0969da;outline-offset:2px}';
  // Page rules reach the host (`* { display:none !important }`): only inline !important beats them.
  var HOST_STYLE = ('all:initial;display:block;position:fixed;right:16px;bottom:16px;z-index:2147483647;' +
    'max-width:calc(100vw - 32px);visibility:visible;opacity:1').replace(/;|$/g, ' !important;');

  function button(className) {
    var b = document.createElement('button');
    b.className = className;
    b.type = 'button';
    return b;
  }

  function bubble(onClick) {
    var host = null;
    var box = null;
    var text = null;
    var current = null;

    function build() {
      host = document.createElement('teaser-widget');
      host.style.cssText = HOST_STYLE;
      var style = document.createElement('style');
      style.textContent = CSS;
      box = document.createElement('div');
      box.className = 'b';
      box.setAttribute('aria-live', 'polite');
      text = button('m');
      text.onclick = function () { onClick(current); };
      var close = button('x');
      close.setAttribute('aria-label', 'Close message');
      close.textContent = '×';
      close.onclick = hide;
      box.append(text, close);
      host.attachShadow({ mode: 'open' }).append(style, box);
      (document.body || document.documentElement).appendChild(host);
    }
    function hide() { if (host) host.remove(); host = null; }

    return {
      show: function (message) {
        var shown = !!host;
        if (!shown) build();
        current = message;
        text.textContent = message.message; // text, never HTML
        var still = window.matchMedia && matchMedia('(prefers-reduced-motion: reduce)').matches;
        if (!still && box.animate) {
          box.animate([{ transform: 'scale(' + (shown ? 0.94 : 0.85) + ')', opacity: shown ? 1 : 0 },
            { transform: 'scale(1)', opacity: 1 }], { duration: 220, easing: 'ease-out' });
        }
      },
      hide: hide
    };
  }

  // ---- the client: one state, transports switched by it ----
  var State = { CONNECTING: 'connecting', WEBSOCKET: 'websocket', POLLING: 'polling', REFUSED: 'refused',
    CLOSED: 'closed' };
  var state = State.CONNECTING;
  var handlers = { message: [], transport: [], poll: [] };
  var socket = null;
  var poller = null;
  var reconnectTimer = null;
  var step = 0;
  var openedAt = 0;
  var timers = [];
  var startedAt = Date.now();

  function emit(name, a, b) {
    handlers[name].forEach(function (fn) {
      try { fn(a, b); } catch (e) { warn('A ' + name + ' handler threw: ' + e); }
    });
  }
  function setState(next) {
    var previous = state;
    if (next !== previous) emit('transport', state = next, previous);
  }

  var seenKey = 'teaser:seen:' + siteId;
  var seen = [];
  try { seen = JSON.parse(load(seenKey)) || []; } catch (e) { /* corrupt: start afresh */ }

  function firstSight(id) {
    if (id == null) return true;
    if (seen.indexOf(id) !== -1) return false;
    seen.push(id);
    if (seen.length > SEEN_MAX) seen = seen.slice(-SEEN_MAX);
    save(seenKey, JSON.stringify(seen));
    return true;
  }

  function handleFrame(frame, transport) {
    if (state === State.CLOSED) return;
    if (frame.type === 'ping') return transport.send({ type: 'pong' });
    if (frame.type !== 'teaser') return;
    transport.send({ type: 'ack', id: frame.id }); // also for duplicates: the server stops resending
    if (frame.seq > lastSeq) { lastSeq = frame.seq; keepSession(); }
    if (!firstSight(frame.id)) return;
    var message = { id: frame.id, message: String(frame.message), priority: frame.priority,
      createdAt: frame.createdAt, expiresAt: frame.expiresAt };
    info('🎯 NEW TEASER MESSAGE RECEIVED: ' + message.message);
    emit('message', message);
    display(message);
  }

  function display(message) {
    view.show(message);
    info('✅ Teaser shown with message: ' + message.message);
    track('teaser_shown', { teaserId: message.id });
  }

  function startPolling() {
    if (poller || state === State.CLOSED) return;
    info('↩️ Falling back to polling');
    resuming = true;
    var transport = poller = pollingTransport();
    transport.open({
      onOpen: function () { setState(refusals ? State.REFUSED : State.POLLING); },
      onFrame: function (frame) { handleFrame(frame, transport); },
      onPoll: function (result) { emit('poll', result); }
    });
  }
  function stopPolling() { if (poller) poller.close(); poller = null; }

  function connect() {
    var transport = webSocketTransport();
    if (refusals || !transport.supported()) return startPolling();
    socket = transport;
    transport.open({
      onOpen: function () {
        openedAt = Date.now();
        stopPolling();
        setState(State.WEBSOCKET);
        info('🔌 WebSocket connected');
      },
      onFrame: function (frame) { handleFrame(frame, transport); },
      onClose: function () {
        if (socket !== transport) return;
        socket = null;
        if (openedAt && Date.now() - openedAt > WS_STABLE) step = 0;
        openedAt = 0;
        startPolling();
        reconnectTimer = setTimeout(connect, backoff(step++));
      }
    });
  }

  // ---- visitor events (POST /api/events): failures logged, never thrown ----
  var query = new URLSearchParams(location.search);

  function event(type, extra) {
    var utm = {};
    PARAMS.forEach(function (name) { if (query.get(name)) utm[name] = query.get(name); });
    var timeZone;
    try { timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* old browser */ }
    return Object.assign(who(), {
      type: type, url: location.href, referrer: document.referrer, title: document.title, utm: utm,
      customerId: query.get('customer_id'), customerEmail: query.get('customer_email'),
      secondsOnPage: Math.round((Date.now() - startedAt) / 1000),
      ts: new Date().toISOString(), timeZone: timeZone
    }, extra);
  }

  function track(type, extra) {
    if (state === State.CLOSED || refusals || typeof fetch !== 'function') return;
    var name = extra && extra.name;
    postJSON('/api/events', event(type, extra))
      .then(function (response) {
        if (response.ok) return;
        return bodyOf(response).then(function (body) {
          // A custom event's refusal says why, once per name.
          if (!refusal(body)) warnOnce('events' + (name || ''), (name ? type + "('" + name + "') refused: " +
            describeError(response, body) : 'Event reporting failed: HTTP ' + response.status));
        });
      })
      .catch(function (error) { warnOnce('events', 'Event reporting failed: ' + error.message); });
  }

  // The shop's own events, each with an id (two in a millisecond are two); the server judges names.
  var queued = [];
  function custom(type, name, extra) {
    if (!/^[A-Za-z][\w.:-]{0,63}$/.test(name)) return warn(type + ': "' + name + '" is not an event name');
    extra.name = name;
    extra.eventId = Math.random().toString(36).slice(2);
    if (sessionId) track(type, extra);
    else if (queued.length < 50) queued.push([type, extra]);
  }

  function onPageHide() {
    if (refusals) return;
    // Unloading cancels fetch, not a beacon; a string goes as text/plain: no CORS preflight.
    var body = JSON.stringify(event('page_leave'));
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint + '/api/events', body))) track('page_leave');
  }

  function openChat(message) {
    if (!message) return;
    var detail = { id: message.id, message: message.message };
    [window, document].forEach(function (target) {
      target.dispatchEvent(new CustomEvent('teaser:click', { detail: detail }));
    });
    track('teaser_click', { teaserId: message.id });
  }

  function destroy() {
    if (state === State.CLOSED) return;
    clearTimeout(reconnectTimer);
    timers.forEach(clearTimeout);
    if (socket) socket.close();
    socket = null;
    stopPolling();
    view.hide();
    window.removeEventListener('pagehide', onPageHide);
    setState(State.CLOSED);
    handlers = { message: [], transport: [], poll: [] };
  }

  var view = bubble(openChat);

  window.TeaserWidget = Object.freeze(Object.defineProperties({
    show: function (text) { if (state !== State.CLOSED) display({ id: null, message: String(text) }); },
    track: function (name, props) { custom('track', name, { props: props }); },
    goal: function (name, value) { custom('goal', name, { value: value }); },
    on: function (name, fn) {
      if (!handlers[name]) throw new Error('TeaserWidget.on: unknown event "' + name + '"');
      handlers[name].push(fn);
    },
    destroy: destroy
  }, {
    sessionId: { get: function () { return sessionId; }, enumerable: true },
    transport: { get: function () { return state; }, enumerable: true }
  }));

  if (!siteId) warn('data-site-id is missing on the widget script tag');
  window.addEventListener('pagehide', onPageHide);
  function start() {
    if (state === State.CLOSED) return;
    track('page_view');
    queued.forEach(function (call) { track(call[0], call[1]); });
    queued = [];
    [30, 60].forEach(function (seconds) {
      timers.push(setTimeout(function () { track('time_on_page'); }, seconds * 1000));
    });
    connect();
    window.dispatchEvent(new CustomEvent('teaser:ready'));
  }
  if (sessionId) start(); else openSession(start);
})();
