// The side panel's frame: two tabs (Details | Journey) beside the feed on a wide screen,
// and on a narrower one a drawer over the page (full screen on a phone) with a close
// button, Esc, and focus taken in and given back. Whatever opens is shown where the eye is.

const DRAWER = matchMedia('(max-width: 1200px)'); // as in dashboard.css
const byId = (id) => document.getElementById(id);

export class SidePanel {
  constructor() {
    this.side = byId('side');
    this.scrim = byId('scrim');
    this.tabs = [...this.side.querySelectorAll('[role="tab"]')];
    this.returnFocus = null;
    for (const tab of this.tabs) {
      tab.addEventListener('click', () => this.show(tab.getAttribute('aria-controls')));
      tab.addEventListener('keydown', (event) => this.arrowed(event, tab));
    }
    byId('side-close').addEventListener('click', () => this.close());
    this.scrim.addEventListener('click', () => this.close());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.isDrawer() && this.side.classList.contains('open') && !document.querySelector('dialog[open]')) this.close();
    });
    DRAWER.addEventListener('change', () => { this.scrim.hidden = !(this.isDrawer() && this.side.classList.contains('open')); });
  }

  isDrawer() {
    return DRAWER.matches;
  }

  // Shows one tab's panel ('details' or 'journey'), opening the drawer if there is one.
  show(name) {
    for (const tab of this.tabs) {
      const selected = tab.getAttribute('aria-controls') === name;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      byId(tab.getAttribute('aria-controls')).hidden = !selected;
    }
    const drawing = this.isDrawer() && !this.side.classList.contains('open');
    if (drawing) this.returnFocus = document.activeElement;
    this.side.classList.add('open');
    this.scrim.hidden = !this.isDrawer();
    this.side.scrollTop = 0;
    if (drawing) byId(name).focus({ preventScroll: true });
    else this.reveal();
  }

  // The sticky panel can sit partly off screen when the page is scrolled: bring it in.
  reveal() {
    if (this.isDrawer()) return;
    const box = this.side.getBoundingClientRect();
    if (box.top < 0 || box.top > innerHeight - 120) this.side.scrollIntoView({ block: 'start', behavior: 'instant' });
  }

  close() {
    this.side.classList.remove('open');
    this.scrim.hidden = true;
    if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus({ preventScroll: true });
    this.returnFocus = null;
  }

  arrowed(event, tab) {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = this.tabs[(this.tabs.indexOf(tab) + step + this.tabs.length) % this.tabs.length];
    next.focus();
    this.show(next.getAttribute('aria-controls'));
  }
}
