/// <reference path="../../widget/teaser-widget.d.ts" />
// A page using every declaration of widget/teaser-widget.d.ts. The line after each
// expect-error comment is misuse the declarations must refuse: tsc fails if one is accepted.
// It is a module, as most pages' scripts are; the reference above still brings the globals.
export {};

function useTheWidget(widget: TeaserWidget.Widget): void {
  const session: string | null = widget.sessionId;
  const transport: TeaserWidget.Transport = widget.transport;
  widget.show(`Hello ${session ?? 'visitor'}, over ${transport}`);
  widget.on('message', (message: TeaserWidget.Message) => {
    const fields: [string, string, TeaserWidget.Priority, string, string] = [
      message.id,
      message.message,
      message.priority,
      message.createdAt,
      message.expiresAt,
    ];
    console.log(fields, new Date(message.expiresAt).getTime());
  });
  widget.on('transport', (now, before) => console.log(`${before} -> ${now}`));
  widget.on('poll', (result: TeaserWidget.PollResult) => {
    console.log(result.ok, result.count + 1, result.at.toISOString());
  });
  const closing: TeaserWidget.Events['transport'] = (now) => now === 'closed' && console.log('bye');
  widget.on('transport', closing);
  const props: TeaserWidget.Props = { sku: 'chair-42', price: 249, gift: false, note: null };
  widget.track('added_to_cart', props);
  widget.track('viewed_size_guide');
  widget.goal('purchase', 49.9);
  widget.goal('signed_up');
  widget.destroy();

  // @ts-expect-error: on() knows only message, transport and poll
  widget.on('click', () => undefined);
  // @ts-expect-error: a message handler gets a Message, not a PollResult
  widget.on('message', (result: TeaserWidget.PollResult) => result.ok);
  // @ts-expect-error: the global is frozen
  widget.transport = 'polling';
  // @ts-expect-error: the global is frozen, its methods too
  widget.destroy = () => undefined;
  // @ts-expect-error: the session id is null until the session is open
  console.log(widget.sessionId.length);
  // @ts-expect-error: show() takes the text alone
  widget.show({ message: 'Hi' });
  // @ts-expect-error: props are flat, no nested objects
  widget.track('added_to_cart', { item: { sku: 'chair-42' } });
  // @ts-expect-error: a goal's value is a number in the shop's currency
  widget.goal('purchase', '49.90');
  // @ts-expect-error: an event has a name
  widget.track();
}

function receive(frame: TeaserWidget.TeaserFrame): TeaserWidget.Message {
  const seq: number | null | undefined = frame.seq;
  console.log(frame.type, seq);
  const { id, message, priority, createdAt, expiresAt } = frame;
  return { id, message, priority, createdAt, expiresAt };
}

function embed(options: TeaserWidget.Dataset): HTMLScriptElement {
  const script = document.createElement('script');
  script.src = 'https://teaser.example.com/widget.js';
  script.async = true;
  script.dataset.siteId = options.siteId;
  if (options.endpoint !== undefined) script.dataset.endpoint = options.endpoint;
  if (options.pollInterval !== undefined) script.dataset.pollInterval = options.pollInterval;
  if (options.debug !== undefined) script.dataset.debug = options.debug;
  return document.head.appendChild(script);
}

embed({ siteId: 'woodstock_outlet', endpoint: 'https://teaser.example.com', pollInterval: '8000' });
embed({ siteId: 'woodstock_outlet', debug: '' });
// @ts-expect-error: data-site-id is required
embed({ endpoint: 'https://teaser.example.com' });
// @ts-expect-error: data-poll-interval is a number of milliseconds
embed({ siteId: 'woodstock_outlet', pollInterval: 'fast' });

const shown: TeaserWidget.Message = receive({
  type: 'teaser',
  id: 'tsr_1',
  seq: 1,
  message: 'Need a hand?',
  priority: 'manual',
  createdAt: '2024-01-01T00:00:00.000Z',
  expiresAt: '2024-01-01T00:05:00.000Z',
});
console.log(shown);
// @ts-expect-error: a priority is manual or auto
const urgent: TeaserWidget.Priority = 'urgent';
// @ts-expect-error: the states are connecting, websocket, polling and closed
const opened: TeaserWidget.Transport = 'open';
console.log(urgent, opened);

// The global exists only once widget.js has run, as a bare name and on window alike.
if (TeaserWidget) useTheWidget(TeaserWidget);
window.TeaserWidget?.show('Hi');
// @ts-expect-error: before widget.js has run there is no TeaserWidget
TeaserWidget.show('Hi');

window.addEventListener('teaser:ready', (event) => {
  const detail: null = event.detail;
  console.log(detail, window.TeaserWidget?.sessionId);
});
const onClick = (event: CustomEvent<TeaserWidget.ClickDetail>): void => {
  console.log(event.detail.id ?? 'shown by the page', event.detail.message);
};
window.addEventListener('teaser:click', onClick);
document.addEventListener('teaser:click', onClick);
window.addEventListener('teaser:click', (event) => {
  // @ts-expect-error: a text shown with show() has no id
  console.log(event.detail.id.length);
});
// @ts-expect-error: teaser:ready is dispatched on window only, so here it is a plain Event
document.addEventListener('teaser:ready', (event) => event.detail);
