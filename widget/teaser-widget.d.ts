/*! Types of widget.js: the `TeaserWidget` global, the events it dispatches, the teasers it receives.
 * A TypeScript page gets them with: /// <reference path="teaser-widget.d.ts" />
 * tests/test_widget_types.py keeps every name here equal to what widget.js implements. */

/** The widget's types; the value of the same name is the widget itself. */
declare namespace TeaserWidget {
  /** Who made a teaser: an operator by hand, or a targeting rule. */
  type Priority = 'manual' | 'auto';

  /** The widget's state: the transport that delivers now; refused while the server refuses this
   * page for good (its origin is not allowed, or no such site: no socket, no events, a poll every
   * few minutes until it is accepted); or closed after destroy(). */
  type Transport = 'connecting' | 'websocket' | 'polling' | 'refused' | 'closed';

  /** A teaser as the server sends it: a WebSocket frame, or without `type` an entry of a poll's `messages`. */
  interface TeaserFrame {
    /** The frame's kind; the widget answers `ping` with `pong` and ignores any other. */
    readonly type: 'teaser';
    /** The teaser's id; the widget acks it and shows each id once per tab. */
    readonly id: string;
    /** The session's sequence number of this teaser, sent back as `since` to resume. */
    readonly seq?: number | null;
    /** The text, shown as text (never HTML). */
    readonly message: string;
    /** Who made it. */
    readonly priority: Priority;
    /** When it was made, RFC 3339 UTC with milliseconds. */
    readonly createdAt: string;
    /** When the server stops delivering it, RFC 3339 UTC with milliseconds. */
    readonly expiresAt: string;
  }

  /** A teaser as the `message` event hands it over, once per id: the frame less `type` and `seq`. */
  interface Message {
    /** The teaser's id. */
    readonly id: string;
    /** The text shown. */
    readonly message: string;
    /** Who made it. */
    readonly priority: Priority;
    /** When it was made, RFC 3339 UTC with milliseconds. */
    readonly createdAt: string;
    /** When it expires, RFC 3339 UTC with milliseconds. */
    readonly expiresAt: string;
  }

  /** What the `poll` event hands over after each poll, answered or failed. */
  interface PollResult {
    /** Whether the server answered the poll. */
    readonly ok: boolean;
    /** How many teasers the poll brought (0 when it failed). */
    readonly count: number;
    /** When the poll finished. */
    readonly at: Date;
  }

  /** A custom event's properties: flat, of strings, numbers, booleans and nulls. The site's rules
   * bound their size as JSON (max_props_bytes, 1024 unless they say). */
  type Props = { readonly [name: string]: string | number | boolean | null };

  /** The `detail` of a `teaser:click` event. */
  interface ClickDetail {
    /** The clicked teaser's id; null for a text shown with TeaserWidget.show(). */
    readonly id: string | null;
    /** The clicked text. */
    readonly message: string;
  }

  /** The handler TeaserWidget.on takes for each event name. */
  interface Events {
    /** A teaser arrived that this tab has not shown yet. */
    message: (message: Message) => void;
    /** The widget changed transport (or closed). */
    transport: (now: Transport, before: Transport) => void;
    /** A poll finished (only while polling; a held poll, once the server answers it). */
    poll: (result: PollResult) => void;
  }

  /** The <script> tag's data-* attributes, by the names `script.dataset` gives them. */
  interface Dataset {
    /** data-site-id: the site the session belongs to. */
    siteId: string;
    /** data-endpoint: the Teaser server's base URL; by default the script's own URL less /widget.js. */
    endpoint?: string;
    /** data-poll-interval: milliseconds between plain polls (the server does not long-poll, or the tab
     * is hidden: 4 times this); by default the server's pollInterval. */
    pollInterval?: `${number}`;
    /** data-debug: print info lines too; on when present, unless "false". */
    debug?: string;
  }

  /** The `TeaserWidget` global; it is frozen, so none of these can be reassigned. */
  interface Widget {
    /** This tab's session id; null until the session is open (see `teaser:ready`). */
    readonly sessionId: string | null;
    /** The widget's state now. */
    readonly transport: Transport;
    /** Show a text in the bubble, from this page only; it fires no `message` event. */
    readonly show: (text: string) => void;
    /** Report one of the shop's own events, by a name the site's rules declare ([[event]]), to
     * POST /api/events; rules may score and trigger on it. Sent once, never thrown: a refusal is a
     * console warning. Calls before the session is open are sent once it is. */
    readonly track: (name: string, props?: Props) => void;
    /** Report a goal reached (a declared event that counts as a conversion), with its value in the
     * shop's currency; conversion analysis credits it to the teaser shown last, within a window. */
    readonly goal: (name: string, value?: number) => void;
    /** Call a handler on each event of that name; an unknown name throws. */
    readonly on: <E extends keyof Events>(name: E, handler: Events[E]) => void;
    /** Close the socket, stop the timers, remove the bubble, drop the handlers. */
    readonly destroy: () => void;
  }
}

/** The widget, once widget.js has run; undefined before that (the tag loads it async). */
declare var TeaserWidget: TeaserWidget.Widget | undefined;

/** The events widget.js dispatches on window. */
interface WindowEventMap {
  /** The visitor clicked the bubble's text. */
  'teaser:click': CustomEvent<TeaserWidget.ClickDetail>;
  /** The widget has its session and has started; detail is null. */
  'teaser:ready': CustomEvent<null>;
}

/** The events widget.js dispatches on document. */
interface DocumentEventMap {
  /** The visitor clicked the bubble's text (also dispatched on window). */
  'teaser:click': CustomEvent<TeaserWidget.ClickDetail>;
}
