// The migration console: Alpine.js keeps the page in step with the admin API, uPlot draws the
// charts. Every call carries the operator's bearer token, kept in this tab's session storage.
'use strict';

const MODES = ['legacy', 'dual-write', 'events', 'retired'];
const PHASES = { legacy: 'phase 1 · legacy', 'dual-write': 'phase 2 · dual-write', events: 'phase 3 · events', retired: 'phase 4 · retired' };
const REFRESH_MS = 2000;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function chart(el, title, names) {
  const series = [{}].concat(names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false })));
  const width = Math.max(320, (el.parentElement && el.parentElement.clientWidth) || 480);
  const data = [[]].concat(names.map(() => []));
  return new uPlot({ width, height: 180, title, series, scales: { x: { time: true } }, axes: [{}, { size: 50 }] }, data, el);
}

// A uPlot instance per chart; rebuilt when its set of lines changes.
const charts = {};
function draw(id, names, data) {
  const el = document.getElementById(id);
  if (!el || typeof uPlot === 'undefined') return;
  const key = names.join('|');
  let c = charts[id];
  if (!c || c.key !== key) {
    if (c) c.plot.destroy();
    c = charts[id] = { key, plot: chart(el, '', names) };
  }
  c.plot.setData(data);
}

document.addEventListener('alpine:init', () => {
  Alpine.data('migrationConsole', () => ({
    token: sessionStorage.getItem('adminToken') || '',
    tokenInput: '',
    statusText: 'Enter the admin token to connect.',
    lastRefresh: '',
    modes: MODES,
    routes: [],
    audit: [],
    ov: {},
    replays: [],
    events: [],
    tail: null,
    eventQuery: '',
    journey: null,
    journeyQuery: '',
    switchTo: {},
    force: {},
    pending: null,
    switchResult: null,
    rpsNow: 0,
    requestsSeen: 0,
    timer: null,
    busy: false,

    start() {
      if (this.token) this.connect(this.token);
    },

    async connect(given) {
      const t = (given || this.tokenInput || '').trim();
      if (!t) { this.statusText = 'Enter the admin token to connect.'; return; }
      this.token = t;
      sessionStorage.setItem('adminToken', t);
      this.tokenInput = '';
      this.statusText = 'Connecting…';
      await this.refresh();
      if (!this.timer) this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    },

    disconnect() {
      sessionStorage.removeItem('adminToken');
      this.token = '';
      clearInterval(this.timer);
      this.timer = null;
      this.statusText = 'Token forgotten. Enter it again to connect.';
    },

    async api(path, opts = {}) {
      const headers = Object.assign({ Authorization: 'Bearer ' + this.token, 'X-Admin-Actor': 'console' }, opts.headers || {});
      if (opts.body) headers['Content-Type'] = 'application/json';
      const r = await fetch(path, Object.assign({}, opts, { headers }));
      const text = await r.text();
      let body = null;
      try { body = text ? JSON.parse(text) : null; } catch (_) { body = { detail: text }; }
      return { status: r.status, ok: r.ok, body };
    },

    async refresh() {
      if (this.busy || !this.token) return;
      this.busy = true;
      try {
        const [routes, ov, series, replays] = await Promise.all([
          this.api('/admin/v1/routes'),
          this.api('/admin/v1/console/overview'),
          this.api('/admin/v1/console/series?points=150'),
          this.api('/admin/v1/replays?limit=200'),
        ]);
        if (routes.status === 401) {
          this.statusText = 'The proxy refused this token (401). Enter the admin token again.';
          clearInterval(this.timer);
          this.timer = null;
          return;
        }
        if (routes.ok) {
          this.routes = routes.body.routes;
          for (const r of this.routes) {
            if (!this.switchTo[r.name]) this.switchTo[r.name] = (r.readiness && r.readiness.next_mode) || r.mode;
          }
        }
        if (ov.ok) this.ov = ov.body;
        if (replays.ok) this.replays = replays.body.replays;
        if (series.ok) this.drawSeries(series.body);
        const audits = await Promise.all(this.routes.map((r) => this.api('/admin/v1/routes/' + encodeURIComponent(r.name) + '/audit')));
        this.audit = audits.filter((a) => a.ok).flatMap((a) => a.body.entries).sort((a, b) => (a.at < b.at ? 1 : -1)).slice(0, 20);
        if (!this.eventQuery) await this.searchEvents();
        this.statusText = 'Connected.';
        this.lastRefresh = new Date().toLocaleTimeString();
      } catch (e) {
        this.statusText = 'The admin API did not answer: ' + e;
      } finally {
        this.busy = false;
      }
    },

    drawSeries(s) {
      const t = s.t;
      const routeNames = Object.keys(s.routes);
      const upNames = Object.keys(s.upstreams);
      const rps = routeNames.map((n) => s.routes[n].rate);
      draw('chart-rps', routeNames, [t].concat(rps));
      const lat = [];
      const latNames = [];
      for (const n of routeNames) {
        for (const q of ['p50_ms', 'p95_ms', 'p99_ms']) { latNames.push(n + ' ' + q.slice(0, 3)); lat.push(s.routes[n][q]); }
      }
      draw('chart-latency', latNames, [t].concat(lat));
      const upNamesRate = upNames.flatMap((n) => [n + ' calls/s', n + ' failures/s']);
      draw('chart-upstreams', upNamesRate, [t].concat(upNames.flatMap((n) => [s.upstreams[n].rate, s.upstreams[n].errors])));
      draw('chart-upstream-latency', upNames, [t].concat(upNames.map((n) => s.upstreams[n].p99_ms)));
      const dw = Object.keys(s.dual_write);
      draw('chart-dual-write', dw, [t].concat(dw.map((k) => s.dual_write[k])));
      // The newest interval's rate over every route, and everything counted so far.
      this.rpsNow = routeNames.reduce((sum, n) => sum + (s.routes[n].rate[s.routes[n].rate.length - 1] || 0), 0);
      this.requestsSeen = Math.round(routeNames.reduce((sum, n) => sum + s.routes[n].requests.reduce((a, b) => a + b, 0), 0));
    },

    phaseOf(mode) { return PHASES[mode] || mode; },

    since(at) {
      if (!at) return '';
      const s = Math.max(0, (Date.now() - Date.parse(at)) / 1000);
      if (s < 90) return Math.round(s) + ' s';
      if (s < 5400) return Math.round(s / 60) + ' min';
      if (s < 172800) return Math.round(s / 3600) + ' h';
      return Math.round(s / 86400) + ' days';
    },

    fmt(v, digits) { return v === null || v === undefined ? '—' : Number(v).toFixed(digits); },
    pct(v) { return v === null || v === undefined ? '—' : (v * 100).toFixed(1) + ' %'; },

    sapSyncLag() {
      const s = this.ov.sap_sync;
      if (!s) return '';
      if (!s.configured) return 'not configured';
      if (!s.status) return 'unavailable';
      return this.fmt(s.status.lag_messages, 0) + ' events, ' + this.fmt(s.status.lag_seconds, 1) + ' s';
    },
    sapSyncParked() {
      const s = this.ov.sap_sync;
      return s && s.status ? String(s.status.parked_orders) : '';
    },
    parkedOrders() {
      const p = this.ov.sap_sync && this.ov.sap_sync.parked;
      const list = (p && p.parked) || [];
      return list.filter((o) => o.state !== 'resolved').map((o) => ({
        order: o.order_number, message: o.error, waiting: (o.events || []).length, since: o.parked_at, asked: o.redrive,
      }));
    },

    async redrive(p) {
      if (!window.confirm('Apply the ' + p.waiting + ' parked event(s) of order ' + p.order + ' to SAP again, in their original order?')) return;
      const res = await this.api('/admin/v1/sap-sync/parked/' + encodeURIComponent(p.order) + '/redrive', { method: 'POST' });
      const b = res.body || {};
      this.statusText = res.status === 202 ? 'Redrive of order ' + p.order + ' asked for.' : 'Redrive refused (' + res.status + '): ' + (b.detail || b.title || '');
      await this.refresh();
    },
    shadowRows() {
      const d = (this.ov.shadow && this.ov.shadow.recent_differences) || [];
      return d.flatMap((x) => (x.fields.length ? x.fields.map((f) => ({ at: x.at, sales_order: x.sales_order, result: x.result, field: f.field, sap: f.sap, new: f.new }))
        : [{ at: x.at, sales_order: x.sales_order, result: x.result, field: '', sap: '', new: '' }]));
    },

    askSwitch(r) {
      this.switchResult = null;
      const to = this.switchTo[r.name];
      if (!to || to === r.mode) { this.switchResult = { ok: false, text: r.name + ' is already in ' + r.mode + '.' }; return; }
      this.pending = { route: r.name, from: r.mode, to, force: !!this.force[r.name] };
    },

    async doSwitch() {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      const res = await this.api('/admin/v1/routes/' + encodeURIComponent(p.route) + '/mode', {
        method: 'PUT', body: JSON.stringify({ mode: p.to, force: p.force }),
      });
      if (res.status === 200) {
        this.switchResult = { ok: true, text: p.route + ' now runs in ' + res.body.mode + '.' };
      } else if (res.status === 202) {
        this.switchResult = { ok: true, text: p.route + ' is returning to ' + p.to + ': sap-sync brings SAP up to date first.' };
      } else if (res.status === 401) {
        this.switchResult = { ok: false, text: 'Refused: the proxy did not accept the admin token (401). Nothing was changed.' };
      } else {
        const b = res.body || {};
        this.switchResult = { ok: false, text: 'Refused (' + res.status + '): ' + (b.detail || b.title || 'no reason given'), criteria: b.criteria };
      }
      await this.refresh();
    },

    async replayAction(e, action) {
      if (action === 'discard' && !window.confirm('Discard replay ' + e.id + '? Its write will not reach the other system.')) return;
      const res = await this.api('/admin/v1/replays/' + encodeURIComponent(e.id) + '/' + action, { method: 'POST' });
      this.statusText = res.ok ? 'Replay ' + e.id.slice(0, 13) + ': ' + action + ' done.' : 'Replay ' + action + ' refused (' + res.status + ').';
      await this.refresh();
    },

    async searchEvents() {
      const q = this.eventQuery.trim();
      const res = await this.api('/admin/v1/events?limit=50' + (q ? '&q=' + encodeURIComponent(q) : ''));
      if (res.ok) {
        this.tail = res.body.tail;
        this.events = res.body.events || [];
      } else if (res.status === 404) {
        this.tail = { enabled: false };
        this.events = [];
      }
    },

    async openJourney(key) {
      if (!key) return;
      this.journeyQuery = key;
      const res = await this.api('/admin/v1/journey/' + encodeURIComponent(key));
      this.journey = res.ok ? res.body : { order_number: key, steps: [], unavailable: [{ system: 'proxy', reason: 'journey answered ' + res.status }] };
      const el = document.getElementById('journey');
      if (el) el.scrollIntoView();
    },
  }));
});
