// The dashboard's socket: one per page, reconnecting by itself with full-jitter backoff
// (min + random(0, min(max, min·2^step))). The server speaks at least every 5 s, so 15 s
// of silence means a dead link even when the browser has not noticed.

import { query } from './api.js';

const MIN_DELAY = 500;
const MAX_DELAY = 15000;
const SILENCE_MS = 15000;
const SIGNED_OUT = 4401;

export const State = Object.freeze({
  CONNECTING: 'connecting', LIVE: 'live', RECONNECTING: 'reconnecting', CLOSED: 'closed',
});

export class LiveSocket {
  constructor(path, { onFrame, onState }) {
    this.url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
    // The view rides on the URL too, so the first rows pushed already match it.
    this.onFrame = onFrame;
    this.onState = onState;
    this.state = State.CONNECTING;
    this.step = 0;
    this.socket = null;
    this.watchdog = null;
    this.view = null;
  }

  start() {
    this.connect();
  }

  setView(view) {
    this.view = view;
    this.send({ type: 'view', ...view });
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  connect() {
    const socket = new WebSocket(this.url + query(this.view || {}));
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.step = 0;
      if (this.view) this.send({ type: 'view', ...this.view });
      this.setState(State.LIVE);
      this.heard();
    });
    socket.addEventListener('message', (message) => {
      this.heard();
      let frame;
      try { frame = JSON.parse(message.data); } catch { return; }
      this.onFrame(frame);
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return;
      clearTimeout(this.watchdog);
      if (event.code === SIGNED_OUT) {
        this.setState(State.CLOSED);
        location.assign('/dashboard/login');
        return;
      }
      this.setState(State.RECONNECTING);
      const delay = MIN_DELAY + Math.random() * Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.step++);
      setTimeout(() => this.connect(), delay);
    });
  }

  heard() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.socket && this.socket.close(), SILENCE_MS);
  }

  setState(state) {
    const previous = this.state;
    this.state = state;
    if (previous !== state) this.onState(state, previous);
  }
}
