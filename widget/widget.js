/*! Teaser widget: shows one short message in the chat bubble of this visitor's tab.
 * Embed: <script src="https://teaser.example.com/widget.js" data-site-id="SITE" async></script>
 * Optional: data-endpoint, data-poll-interval (ms), data-debug. No dependencies, no build step. */
(function () {
  'use strict';
  if (window.TeaserWidget && window.TeaserWidget.transport !== 'closed') return; // tag pasted twice

  var PREFIX = '[AI PRL Assist]';
  var PARAMS = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content'];
  var SEEN_MAX = 200;
  var WS_TIMEOUT = 60000; // no frame at all for this long: the socket is dead
  var WS_OPEN_TIMEOUT = 10000;
  var WS_STABLE = 10000; // open this long before a drop: start the backoff again from step 0
  var BACKOFF_MIN = 1000;
  var BACKOFF_MAX = 60000;
  // A refusal no retry cures (see refusal()): the poll asks again after 1 minute, doubling up to 30.
  var REFUSED_MIN = 60000;
  var REFUSED_MAX = 1800000;
  var HIDDEN_SLOWDOWN = 4;

  // ---- configuration: read once, from the script tag ----
  var script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-site-id]');
  var data = (script && script.dataset) || {};
  var siteId = data.siteId || '';
  var endpoint = (data.endpoint || (script && script.src ? new URL('.', script.src).href : location.origin))
    .replace(/\/+$/, '');
  var configuredInterval = parseInt(data.pollInterval, 10) > 0 ? parseInt(data.pollInterval, 10) : 0;
  var debug = data.debug !== undefined && data.debug !== 'false';

  // ---- small utilities ----
  function info(text) { if (debug) console.log(PREFIX + ' ' + text); }
  function warn(text) { console.warn(PREFIX + ' ' + text); }
  var warned = {};
  // Repeating the same failure every poll would drown the console; say it once until it recovers.
  function warnOnce(key, text) { if (!warned[key]) { warned[key] = true; warn(text); } }

  // sessionStorage throws in some privacy modes and sandboxed iframes: the widget then forgets on reload.
  function load(key) { try { return sessionStorage.getItem(key); } catch (e) { return null; } }
  function save(key, value) { try { sessionStorage.setItem(key, value); } catch (e) { /* see load */ } }

  function randomId() {
    var out = '';
    while (out.length < 9) {
      crypto.getRandomValues(new Uint8Array(16)).forEach(function (b) {
        if (b < 252 && out.length < 9) out += (b % 36).toString(36); // 252 = 7 * 36: no bias
      });
    }
    return 'sess_' + Date.now() + '_' + out;
  }

  // Full jitter (as centrifuge-js): spreads reconnects of many tabs after a server restart.
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

  function postJSON(path, body) {
    return fetch(endpoint + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit'
    });
  }

  var sessionKey = 'teaser:session:' + siteId;
  // The server mints the session id and its token (which alone can read the session's
  // messages); both, and the last sequence number seen, live as long as the tab.
  var stored = null;
  try { stored = JSON.parse(load(sessionKey)); } catch (e) { /* absent or corrupt: open anew */ }
  var sessionId = stored && stored.id || null;
  var token = stored && stored.token || null;
  var lastSeq = stored && stored.seq || 0;
  var reopened = false;
  var resuming = false; // true until the first poll after falling back has answered

  function keepSession() { save(sessionKey, JSON.stringify({ id: sessionId, token: token, seq: lastSeq })); }

  function openSession(done) {
    postJSON('/api/sessions', { siteId: siteId })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
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

  // The server refuses this page for good: its origin is not among the site's, or the site does
  // not exist. Only an operator can change that, so retrying at the usual pace would only have
  // every visitor's tab ask to be refused, forever. The socket stops (its refusal is invisible
  // to a page anyway), events stop, and the poll alone asks again, rarely: 1 minute doubling
  // to 30, with full jitter, so a tab left open recovers once the site is fixed. A proxy's
  // error page, a 429, a 5xx or a network failure are not this: they pass, with the usual backoff.
  var PERMANENT = { origin_not_allowed: 1, unknown_site: 1 };
  var refusals = 0; // consecutive refusals; 0 while the server accepts this page

  function refusal(body) {
    var e = body && body.error;
    if (!e || !PERMANENT[e.code]) return false;
    if (!refusals++) {
      // The command comes last, whole, so that it can be copied as it stands.
      warn('Teaser refuses this page (' + e.code + ': ' + e.message + '); asking again every few minutes. ' +
        (e.code === 'unknown_site' ? 'Check data-site-id, or create the site: teaser site add ' + siteId
          : 'To allow this page, run: teaser site origins ' + siteId + ' --add ' + location.origin));
      clearTimeout(reconnectTimer);
      if (socket) { socket.close(); socket = null; }
      setState(State.REFUSED);
      if (sessionId) startPolling(); // the poll is the one that asks again (start() does it otherwise)
    }
    return true;
  }

  // ---- transports: the same shape, { name, supported(), open(callbacks), send(frame), close() } ----
  // callbacks: onOpen(), onFrame(frame), onClose(), onPoll(result).

  function webSocketTransport() {
    var socket = null;
    var timer = null;
    var callbacks = null;
    var url = endpoint.replace(/^http/, 'ws') + '/api/teaser-ws?sessionId=' +
      encodeURIComponent(sessionId) + '&siteId=' + encodeURIComponent(siteId) +
      '&path=' + encodeURIComponent(location.pathname) +
      (token ? '&token=' + encodeURIComponent(token) : '') + (lastSeq ? '&since=' + lastSeq : '');

    function detach() {
      clearTimeout(timer);
      if (socket) {
        socket.onmessage = socket.onclose = null;
        // Closing a socket still connecting makes the browser warn in the console: close it once open.
        socket.onopen = function () { this.close(); };
        if (socket.readyState !== 0) socket.close();
      }
      socket = null;
    }
    function fail() { if (socket) { detach(); callbacks.onClose(); } }
    // Half-open TCP connections never fire onclose; silence past the deadline counts as a drop.
    function expireIn(ms) { clearTimeout(timer); timer = setTimeout(fail, ms); }

    return {
      name: 'websocket',
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

  function pollingTransport() {
    var timer = null;
    var active = false;
    var inFlight = false;
    var again = false;
    var serverInterval = 8000;
    var failures = 0;
    var waitAtLeast = 0; // ms a 429 or 503 asked for (Retry-After)
    var callbacks = null;

    function interval() {
      var base = configuredInterval || serverInterval;
      return document.visibilityState === 'hidden' ? base * HIDDEN_SLOWDOWN : base;
    }
    function schedule(ms) { clearTimeout(timer); if (active) timer = setTimeout(poll, ms); }

    function poll() {
      if (inFlight) { again = true; return; }
      inFlight = true;
      waitAtLeast = 0;
      info('🔄 Polling for teaser messages...');
      var cb = callbacks;
      postJSON('/api/teaser-messages', { sessionId: sessionId, siteId: siteId, path: location.pathname,
        token: token || undefined, since: resuming && lastSeq ? lastSeq : undefined })
        .then(function (response) {
          // A 429 or 503 says how long to wait: never ask sooner (capped at ten minutes).
          waitAtLeast = Math.min(600, +response.headers.get('Retry-After') || 0) * 1000;
          return response.json().catch(function () { return null; }).then(function (body) {
            if (!response.ok && tokenRefused(body)) return {};
            if (!response.ok && refusal(body)) return null;
            if (!response.ok) throw new Error(describeError(response, body));
            return body || {};
          });
        })
        .then(function (body) {
          if (!body) return cb.onPoll({ ok: false, count: 0, at: new Date() });
          if (refusals) { refusals = 0; info('Accepted again'); cb.onOpen(); connect(); }
          failures = 0;
          delete warned.poll;
          resuming = false; // the first poll after a switch recovered what was missed
          if (body.pollInterval > 0) serverInterval = body.pollInterval;
          var messages = body.messages || [];
          if (!messages.length) info('📭 No new teaser messages');
          // Deliver even if close() came meanwhile: the server has handed these over already.
          messages.forEach(function (m) { cb.onFrame(Object.assign({ type: 'teaser' }, m)); });
          cb.onPoll({ ok: true, count: messages.length, at: new Date() });
        })
        .catch(function (error) {
          failures++;
          warnOnce('poll', 'Polling failed: ' + error.message);
          cb.onPoll({ ok: false, count: 0, at: new Date() });
        })
        .then(function () {
          inFlight = false;
          // A failing server is asked less and less often (up to once a minute), a refusing one rarely.
          schedule(refusals ? backoff(refusals - 1, REFUSED_MIN, REFUSED_MAX)
            : again && !waitAtLeast ? 0
            : Math.max(interval(), waitAtLeast, failures ? backoff(failures - 1) : 0));
          again = false;
        });
    }
    // A tab coming back into view polls at once rather than waiting out its slowed-down timer.
    function onVisibility() { if (document.visibilityState === 'visible' && !refusals) schedule(0); }

    return {
      name: 'polling',
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
  // The host page's rules reach the host element itself (e.g. `* { display:none !important }`);
  // only inline !important declarations beat those, so every property here carries it.
  var HOST_STYLE = 'all:initial !important;display:block !important;position:fixed !important;' +
    'right:16px !important;bottom:16px !important;z-index:2147483647 !important;' +
    'max-width:calc(100vw - 32px) !important;visibility:visible !important;opacity:1 !important';

  function bubble(onClick) {
    var host = null;
    var box = null;
    var text = null;
    var current = null;

    function build() {
      host = document.createElement('teaser-widget');
      host.style.cssText = HOST_STYLE;
      var root = host.attachShadow({ mode: 'open' });
      var style = document.createElement('style');
      style.textContent = CSS;
      box = document.createElement('div');
      box.className = 'b';
      box.setAttribute('aria-live', 'polite');
      text = document.createElement('button');
      text.className = 'm';
      text.type = 'button';
      text.onclick = function () { onClick(current); };
      var close = document.createElement('button');
      close.className = 'x';
      close.type = 'button';
      close.setAttribute('aria-label', 'Close message');
      close.textContent = '×';
      close.onclick = hide;
      box.append(text, close);
      root.append(style, box);
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
    if (next === state) return;
    var previous = state;
    state = next;
    emit('transport', next, previous);
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

  // ---- visitor events (POST /api/events); failures are logged, never thrown ----
  var query = new URLSearchParams(location.search);

  function event(type, extra) {
    var utm = {};
    PARAMS.forEach(function (name) { if (query.get(name)) utm[name] = query.get(name); });
    var timeZone;
    try { timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* old browser */ }
    return Object.assign({
      sessionId: sessionId, siteId: siteId, token: token || undefined, type: type,
      url: location.href, path: location.pathname,
      referrer: document.referrer, title: document.title, utm: utm,
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
        return response.json().catch(function () { return null; }).then(function (body) {
          // A custom event's refusal says why (not declared, too big, too many), once per name.
          if (!refusal(body)) warnOnce('events' + (name || ''), (name ? type + "('" + name + "') refused: " +
            describeError(response, body) : 'Event reporting failed: HTTP ' + response.status));
        });
      })
      .catch(function (error) { warnOnce('events', 'Event reporting failed: ' + error.message); });
  }

  // The shop's own events (track, goal), each with an id: two in one millisecond are two.
  // Names are checked lightly here; the server judges. Calls before the session opens wait for it.
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
    // A page being unloaded cancels fetch; a beacon survives. A string body is sent as text/plain,
    // which needs no CORS preflight; the server reads it as JSON.
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
