// fulcrum dashboard: renders GET /api/v1/status and calls the admin API's
// backend actions. Plain DOM, no framework, no inline script (the page is
// served with a Content-Security-Policy that forbids it). Every string from
// the API goes into the page through textContent, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'fulcrum.admin.token';
  const STATUS_URL = '/api/v1/status';
  const HISTORY_URL = '/api/v1/history';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const FETCH_TIMEOUT_MS = 5000;

  const $ = (id) => document.getElementById(id);

  // el builds an element: attrs sets properties and data-*/aria-* attributes;
  // children are nodes or strings (text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-') || k.startsWith('aria-') || ['title', 'scope', 'colspan', 'role'].includes(k)) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  // svg builds an SVG element; attrs are set as attributes, children are
  // SVG elements or strings (a <title>'s text).
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c !== undefined && c !== null) e.append(c);
    }
    return e;
  }

  // ---- formatting ----

  const num = (n) => (n === undefined || n === null) ? '—' : Number(n).toLocaleString('en-US');

  function bytes(n) {
    if (n === undefined || n === null) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = Number(n), i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + ' ' + units[i];
  }

  // validTime: the API omits zero times, but be lenient with Go's zero value.
  function validTime(s) {
    if (!s) return null;
    const t = new Date(s);
    if (isNaN(t) || t.getUTCFullYear() <= 1) return null;
    return t;
  }

  function duration(ms) {
    let s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return d + 'd' + h + 'h';
    if (h > 0) return h + 'h' + m + 'm';
    return m + 'm' + s + 's';
  }

  function ago(s) {
    const t = validTime(s);
    return t ? duration(Date.now() - t.getTime()) + ' ago' : '';
  }

  const fullTime = (s) => { const t = validTime(s); return t ? t.toISOString() : ''; };

  // hms is a time of day on the browser's clock, e.g. 20:41:03.
  function hms(t) {
    const d = new Date(t);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  }

  // perSec formats a rate as the tables do.
  const perSec = (r) => r === 0 ? '0' : r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en-US');

  // ---- token ----

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  }

  function setToken(v) {
    try {
      if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      message('error', 'cannot keep the token: session storage is unavailable (' + e.message + ')');
    }
    showTokenState();
  }

  function showTokenState() {
    $('token-state').textContent = token() ? 'token set for this tab' : 'no token';
    $('token-forget').disabled = !token();
  }

  // ---- messages ----

  function message(kind, text) {
    const close = el('button', { type: 'button', class: 'close', title: 'dismiss', 'aria-label': 'dismiss', text: '×' });
    const m = el('div', { class: 'banner ' + kind, role: kind === 'error' ? 'alert' : 'status' }, el('span', { class: 'text', text }), close);
    close.addEventListener('click', () => m.remove());
    $('messages').prepend(m);
    // Successes fade on their own; errors stay until dismissed.
    if (kind !== 'error') setTimeout(() => m.remove(), 6000);
    while ($('messages').childElementCount > 4) $('messages').lastElementChild.remove();
  }

  // ---- status polling ----

  let last = null;        // the last status received
  let hist = null;        // the last GET /api/v1/history, or null
  let histIndex = new Map(); // "pool|backend" ("pool|" for a service) → its series
  let prevCounts = new Map(); // "pool|address" → counters of the status before, for rates
  let lastCounts = new Map();
  let lastAt = null;      // when
  let timer = null;
  let seq = 0;            // the newest poll; an older answer arriving late is dropped
  // While a pointer is down on the services, a re-render would swap the
  // button under it and lose the click; wait (at most a second) instead.
  let holdingSince = 0;
  let pendingRender = false;
  const busy = new Set(); // "service|address" with an action in flight

  async function poll() {
    clearTimeout(timer);
    timer = null;
    const mine = ++seq;
    const ctl = new AbortController();
    const to = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const history = fetchHistory(ctl.signal);
      const resp = await fetch(STATUS_URL, { cache: 'no-store', headers: { Accept: 'application/json' }, signal: ctl.signal });
      if (!resp.ok) throw new Error('HTTP ' + resp.status + ' ' + resp.statusText);
      const st = await resp.json();
      const h = await history;
      if (mine !== seq) return;
      last = st;
      if (h) {
        hist = h;
        histIndex = new Map((h.series || []).map((x) => [x.service + '|' + (x.backend || ''), x]));
      }
      lastAt = new Date();
      const counts = countsOf(last, lastAt);
      // A poll right after another (an action asks for one) would make
      // rates over a few milliseconds: keep measuring from the older one.
      if (!lastCounts.at || counts.at - lastCounts.at >= 500) prevCounts = lastCounts;
      lastCounts = counts;
      $('fetch-error').hidden = true;
      document.body.classList.remove('stale');
      render();
    } catch (e) {
      if (mine !== seq) return;
      const why = e.name === 'AbortError' ? 'no answer within ' + FETCH_TIMEOUT_MS / 1000 + 's' : e.message;
      $('fetch-error').textContent = 'Cannot read ' + STATUS_URL + ': ' + why +
        (lastAt ? '. Showing data from ' + lastAt.toLocaleTimeString() + '.' : '.');
      $('fetch-error').hidden = false;
      document.body.classList.add('stale');
    } finally {
      clearTimeout(to);
      if (mine === seq) schedule();
    }
  }

  // fetchHistory reads the node's recent rates and HA changes; the graphs
  // keep their last data (and the tables still render) when it fails.
  async function fetchHistory(signal) {
    try {
      const resp = await fetch(HISTORY_URL, { cache: 'no-store', headers: { Accept: 'application/json' }, signal });
      return resp.ok ? await resp.json() : null;
    } catch {
      return null;
    }
  }

  function schedule() {
    clearTimeout(timer);
    const every = Number($('refresh').value);
    timer = every > 0 && !document.hidden ? setTimeout(poll, every) : null;
  }

  // ---- rendering ----

  // countsOf indexes a status's cumulative backend counters by pool and
  // address, with the time they were taken (the status's own "time" when
  // it has one), so that the next render can show rates.
  function countsOf(st, fallback) {
    const at = (validTime(st.time) || fallback).getTime();
    const m = new Map();
    m.at = at;
    for (const s of st.services || []) {
      const pools = [{ name: s.name, backends: s.backends || [] }, ...(s.routes || []).map((r) => ({ name: r.name, backends: r.backends || [] }))];
      for (const p of pools) {
        for (const b of p.backends) {
          const r = requestsOf(b);
          m.set(p.name + '|' + b.address, { at, total: b.total, requests: r ? r.requests : undefined });
        }
      }
    }
    return m;
  }

  // rate is the per-second increase of a counter since the status before;
  // '' when unknown (first sample, counter reset by a reload).
  function rate(key, field, value) {
    const now = lastCounts.get(key), before = prevCounts.get(key);
    if (!now || !before || value === undefined || before[field] === undefined) return '';
    const dt = (now.at - before.at) / 1000;
    if (dt <= 0 || value < before[field]) return '';
    const r = (value - before[field]) / dt;
    return r === 0 ? '0' : r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en-US');
  }

  function render() {
    if (!last) return;
    if (Date.now() - holdingSince < 1000) { pendingRender = true; return; }
    pendingRender = false;
    renderAbout(last);
    renderHA(last.ha || [], last.config_hash || '');
    renderTimeline(hist ? hist.ha || [] : []);
    renderServices(last.services || []);
    $('updated').textContent = 'updated ' + lastAt.toLocaleTimeString();
  }

  function renderAbout(st) {
    $('node').textContent = st.node || '(unnamed node)';
    document.title = (st.node ? st.node + ' · ' : '') + 'fulcrum';
    const items = [['version', st.version || '—']];
    if (st.config_hash) items.push(['config', st.config_hash.slice(0, 12), st.config_hash]);
    if (st.config_file) items.push(['file', st.config_file]);
    const started = validTime(st.started);
    if (started) items.push(['up', duration(Date.now() - started.getTime()), 'started ' + started.toISOString()]);
    const r = st.reloads || {};
    let reloads = num(r.ok || 0) + ' ok';
    if (r.failed) reloads += ', ' + num(r.failed) + ' failed';
    items.push(['reloads', reloads, r.last_error ? 'last error: ' + r.last_error : fullTime(r.last)]);
    const d = st.director;
    if (d) {
      const ifs = (d.interfaces || []).map((i) => i.name + ' ' + i.mode).join(', ') || 'attached nowhere';
      const why = Object.entries(d.counters || {}).filter(([, v]) => v).map(([k, v]) => k + ' ' + v).join(', ');
      items.push(['director', ifs + ' · ' + num(d.flow_entries || 0) + ' flows', why || d.error]);
      const sy = d.sync;
      if (sy) {
        const peers = sy.peers || [];
        const heard = peers.filter((p) => validTime(p.last_heard)).length;
        const drops = Object.entries(sy.dropped || {}).map(([k, v]) => k + ' ' + v).join(', ');
        const feedDown = sy.feed === 'restarting';
        items.push(['sync', heard + '/' + peers.length + ' peers heard · ' + num(sy.sent) + ' sent · ' + num(sy.installed) + ' installed' +
          (feedDown ? ' · new-flow feed down' : ''),
          sy.listen + (drops ? ' · dropped: ' + drops : '') + (sy.feed_failures ? ' · new-flow feed failed ' + sy.feed_failures + ' times, last: ' + sy.feed_error : ''),
          feedDown ? 'bad' : drops ? 'warn' : '']);
      }
    }
    const dl = $('about');
    dl.replaceChildren(...items.flatMap(([k, v, title, cls]) => [el('dt', { text: k }), el('dd', { text: v, title, class: cls || (k === 'reloads' && r.failed ? 'warn' : '') })]));
    if (r.last_error) dl.append(el('dt', { text: 'last reload' }), el('dd', { class: 'bad', text: r.last_error }));
  }

  // ---- graphs ----

  // The graphs span the node's history window (10 minutes), or the time
  // since its first sample when that is shorter, so that a young node's
  // graphs are not a sliver at the right edge; they end at the newest
  // sample.
  function histNow() {
    const times = (hist && hist.times) || [];
    return times.length ? times[times.length - 1] : (validTime(hist && hist.time) || new Date()).getTime();
  }
  function windowMS() {
    if (!hist) return 600000;
    const full = hist.window_ms || 600000;
    const times = hist.times || [];
    if (!times.length) return full;
    return Math.min(full, Math.max(1000, histNow() - (times[0] - (hist.interval_ms || 0))));
  }
  const windowStart = () => histNow() - windowMS();
  function windowLabel() {
    const ms = windowMS();
    return 'last ' + (ms >= 120000 ? Math.round(ms / 60000) + ' min' : Math.round(ms / 1000) + ' s');
  }

  // niceMax rounds a graph's top up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
  }

  // lines turns one series of values (null where unknown) into polylines,
  // broken at the gaps, in a w × h box whose top is max.
  function lines(values, cls, w, h, max) {
    const t0 = windowStart(), span = windowMS();
    const out = [];
    let pts = [];
    const flush = () => {
      if (pts.length) out.push(svg('polyline', { class: cls, points: pts.join(' '), 'vector-effect': 'non-scaling-stroke' }));
      pts = [];
    };
    values.forEach((v, i) => {
      if (v === null || v === undefined) { flush(); return; }
      const x = Math.max(0, (hist.times[i] - t0) / span * w);
      const y = h - 1 - v / max * (h - 2);
      pts.push(x.toFixed(1) + ',' + y.toFixed(1));
    });
    flush();
    return out;
  }

  // chart draws a series' rate (and errors, in red) over the window. It
  // carries data-points (how many rates it plots), data-last (the newest
  // rate) and data-peak (the highest) for tests and tools.
  function chart(x, w, h, cls) {
    const known = (vs) => (vs || []).filter((v) => v !== null && v !== undefined);
    const rates = known(x.rate), errs = known(x.errors);
    const max = niceMax(Math.max(0, ...rates, ...errs));
    const lastRate = rates.length ? rates[rates.length - 1] : null;
    const lastErr = errs.length ? errs[errs.length - 1] : null;
    const title = x.unit + ', ' + windowLabel() + ': now ' + (lastRate === null ? '—' : perSec(lastRate)) +
      ', peak ' + (rates.length ? perSec(Math.max(...rates)) : '—') + '; errors/s now ' + (lastErr === null ? '—' : perSec(lastErr)) +
      ', peak ' + (errs.length ? perSec(Math.max(...errs)) : '—') + '; top of the graph ' + max;
    return svg('svg', {
      class: 'chart ' + cls, viewBox: '0 0 ' + w + ' ' + h, preserveAspectRatio: 'none', role: 'img', 'aria-label': title,
      'data-points': rates.length, 'data-last': lastRate === null ? '' : lastRate, 'data-peak': rates.length ? Math.max(...rates) : '',
    }, svg('title', {}, title), svg('rect', { class: 'bg', x: 0, y: 0, width: w, height: h }),
    lines(x.rate || [], 'rate', w, h, max), lines(x.errors || [], 'errors', w, h, max));
  }

  // serviceGraph is a service's rate and errors over the window, with
  // the numbers beside it.
  function serviceGraph(s) {
    const x = histIndex.get(s.name + '|');
    if (!x) return null;
    const known = (x.rate || []).filter((v) => v !== null);
    const errs = (x.errors || []).filter((v) => v !== null);
    const top = niceMax(Math.max(0, ...known, ...errs));
    return el('div', { class: 'graph', 'data-graph': s.name },
      el('div', { class: 'graph-head' },
        el('span', { class: 'legend rate', text: x.unit + ' now ' + (known.length ? perSec(known[known.length - 1]) : '—') + ', peak ' + (known.length ? perSec(Math.max(...known)) : '—') }),
        el('span', { class: 'legend errors', text: 'errors/s now ' + (errs.length ? perSec(errs[errs.length - 1]) : '—') + ', peak ' + (errs.length ? perSec(Math.max(...errs)) : '—') }),
        el('span', { class: 'muted', text: windowLabel() + ', top ' + top + ' ' + x.unit })),
      chart(x, 600, 60, 'big'));
  }

  // renderTimeline draws each HA group's states over the window, and
  // lists its latest changes.
  function renderTimeline(groups) {
    const box = $('ha-timeline');
    if (!groups.length) { box.replaceChildren(); return; }
    const w = 600, h = 16, t0 = windowStart(), span = windowMS(), now = t0 + span;
    const xOf = (t) => Math.min(w, Math.max(0, (t - t0) / span * w));
    const rows = groups.map((g) => {
      const trs = g.transitions || [];
      const first = validTime(g.first_seen);
      const segs = [];
      // The state at the left edge: the last change before it, else the
      // first change's origin, else the state now.
      let state = trs.length ? trs[0].from : g.state;
      let from = t0;
      if (first && first.getTime() > t0) {
        segs.push(['unknown', t0, first.getTime()]);
        from = first.getTime();
      }
      for (const tr of trs) {
        const t = new Date(tr.time).getTime();
        if (t <= from) { state = tr.to; continue; }
        segs.push([state, from, t]);
        state = tr.to;
        from = t;
      }
      segs.push([state, from, now]);
      const bar = svg('svg', { class: 'timeline', viewBox: '0 0 ' + w + ' ' + h, preserveAspectRatio: 'none', role: 'img',
        'aria-label': g.group + ' over the ' + windowLabel() },
      segs.filter(([, a, b]) => b > a).map(([st, a, b]) => svg('rect', { class: 'seg ' + st, 'data-state': st, x: xOf(a).toFixed(1), y: 0, width: Math.max(0.5, xOf(b) - xOf(a)).toFixed(1), height: h },
        svg('title', {}, st + ' ' + hms(a) + ' – ' + hms(b)))),
      trs.filter((tr) => new Date(tr.time).getTime() > t0).map((tr) => svg('line', { class: 'mark', x1: xOf(new Date(tr.time).getTime()).toFixed(1), x2: xOf(new Date(tr.time).getTime()).toFixed(1), y1: 0, y2: h, 'vector-effect': 'non-scaling-stroke' })));
      const list = el('ul', { class: 'changes' }, trs.slice(-6).reverse().map((tr) => el('li', { 'data-time': fullTime(tr.time) },
        el('span', { class: 'pill ' + tr.from, text: tr.from }), ' → ', el('span', { class: 'pill ' + tr.to, text: tr.to }),
        ' at ' + hms(tr.time), tr.changes > 1 ? el('span', { class: 'muted', text: ' (' + tr.changes + ' changes between two samples)' }) : null)));
      if (!trs.length) list.append(el('li', { class: 'muted', text: 'no change since ' + (first ? hms(first) : 'start') }));
      return el('div', { class: 'ha-timeline-row', 'data-group': g.group },
        el('div', { class: 'timeline-head' }, el('span', { class: 'name', text: g.group }), ' ', el('span', { class: 'pill ' + g.state, text: g.state })),
        el('div', { class: 'timeline-bar' }, bar, el('div', { class: 'axis muted' }, el('span', { text: hms(t0) }), el('span', { text: hms(now) }))),
        list);
    });
    box.replaceChildren(el('h3', {}, 'State over the ' + windowLabel()), ...rows);
  }

  function cell(text, cls, title) { return el('td', { class: cls, title, text: String(text) }); }

  // peerCell lists the peers heard in a group; a peer whose adverts carry
  // another config hash than ours is flagged, as `fulcrum status` does.
  function peerCell(peers, ours) {
    const td = el('td', { class: 'peers' });
    for (const p of peers) {
      let cls = 'tag', note = '';
      if (p.config_hash && ours && !ours.startsWith(p.config_hash)) {
        cls += ' bad';
        note = ' — runs config ' + p.config_hash.slice(0, 12) + ', this node ' + ours.slice(0, 12);
      }
      td.append(el('span', {
        class: cls, text: p.address + ' (' + p.priority + ')' + (note ? ' different config' : ''),
        title: 'last heard ' + ago(p.last_heard) + (p.interval_ms ? ', every ' + p.interval_ms + ' ms' : '') +
          (p.adverts ? ', ' + num(p.adverts) + ' adverts' : '') + (p.config_hash ? ', config ' + p.config_hash : '') + note,
      }));
    }
    if (peers.length === 0) td.append(el('span', { class: 'muted', text: 'none heard' }));
    return td;
  }

  function renderHA(groups, ours) {
    $('ha-section').hidden = groups.length === 0;
    const head = el('tr', {}, ['Group', 'Interface', 'VRID', 'VIPs', 'State', 'Priority', 'Master', 'Peers', 'Preempt', 'Transitions', 'Adverts sent / received', 'Dropped', 'Tracking']
      .map((h) => el('th', { scope: 'col', text: h })));
    const rows = groups.map((g) => {
      const dropped = Object.entries(g.dropped || {});
      const droppedSum = dropped.reduce((a, [, v]) => a + v, 0);
      let master = g.master || '—';
      if (g.master && g.master_priority) master += ' (prio ' + g.master_priority + (g.master_interval_ms ? ', ' + g.master_interval_ms + ' ms' : '') + ')';
      const prio = g.priority === g.configured_priority ? String(g.priority) : g.priority + ' (configured ' + g.configured_priority + ')';
      const track = el('td', { class: 'track' }, (g.track || []).map((t) =>
        el('span', { class: 'tag ' + (t.ok ? 'ok' : 'bad'), title: (t.detail || '') + (t.weight ? ' weight ' + t.weight : ' fault on failure'), text: t.kind + ':' + t.name })));
      return el('tr', { 'data-group': g.name, class: 'ha-' + g.state },
        cell(g.name, 'name'), cell(g.interface || '—'), cell(g.vrid, 'n'), el('td', {}, (g.vips || []).join(' ') || '—', ' ', g.vips_held !== undefined && g.vips && g.vips.length ?
          el('span', { class: 'tag' + (g.state === 'master' && g.vips_held < g.vips.length ? ' warn' : ''), title: 'VIPs this node holds', text: 'held ' + g.vips_held + '/' + g.vips.length }) : null),
        el('td', { class: 'state' }, el('span', { class: 'pill ' + g.state, text: g.state }), ' ', el('span', { class: 'muted', title: fullTime(g.since), text: ago(g.since) })),
        cell(prio, 'n'), cell(master), peerCell(g.peers || [], ours), cell(g.preempt ? 'yes' : 'no'), cell(num(g.transitions), 'n'),
        cell(num(g.adverts_sent) + ' / ' + num(g.adverts_received) + (g.send_errors ? ' (' + num(g.send_errors) + ' send errors)' : ''), 'n' + (g.send_errors ? ' warn' : '')),
        cell(num(droppedSum), 'n' + (droppedSum ? ' warn' : ''), dropped.map(([k, v]) => k + ': ' + v).join(', ')),
        track);
    });
    $('ha').replaceChildren(el('thead', {}, head), el('tbody', {}, rows));
  }

  // requestsOf reads a backend's request counters, which only backends of
  // HTTP services have: either an object {requests, errors, mean_ms} or
  // flat "requests" and "errors" numbers. null when there are none.
  function requestsOf(b) {
    const r = b.requests;
    if (r && typeof r === 'object') return { requests: r.requests, errors: r.errors, mean: r.mean_ms };
    if (typeof r === 'number') return { requests: r, errors: b.errors };
    return null;
  }

  function renderServices(services) {
    if (services.length === 0) {
      $('services').replaceChildren(el('p', { class: 'muted', text: 'No services configured.' }));
      return;
    }
    $('services').replaceChildren(...services.map(renderService));
  }

  function counterList(counters) {
    return el('p', { class: 'counters' }, counters.map(([k, v, cls]) =>
      el('span', { class: 'counter ' + (cls || '') }, el('span', { class: 'muted', text: k + ' ' }), num(v || 0))));
  }

  function renderService(s) {
    const c = s.counters || {};
    const bits = [s.protocol, 'listen ' + s.listen, s.scheduler];
    if (s.forwarding && s.forwarding !== 'proxy') bits.push('forwarding ' + s.forwarding);
    if (s.persistence) bits.push('persistence ' + s.persistence.timeout_seconds + 's (' + num(s.persistence.entries) + ' entries)');
    const k = s.director;
    const counters = k ? [['packets', k.packets], ['bytes', k.bytes], ['new flows', k.new_flows]] : [['accepted', c.accepted], ['active', c.active], ['no backend', c.no_backend, c.no_backend ? 'warn' : ''],
      ['connect failures', c.connect_failures, c.connect_failures ? 'warn' : ''], ['idle timeouts', c.idle_timeouts]];
    for (const [k, label] of [['proxy_header_errors', 'PROXY header errors'], ['dropped', 'dropped'], ['send_errors', 'send errors']]) {
      if (c[k]) counters.push([label, c[k], 'warn']);
    }
    const pools = [{ name: s.name, backends: s.backends || [] },
      ...(s.routes || []).map((r) => ({ route: r, name: r.name, backends: r.backends || [] }))];
    const all = pools.flatMap((p) => p.backends).filter((b) => b.role !== 'fallback');
    const up = all.filter((b) => b.available).length;

    const section = el('section', { class: 'service', 'data-service': s.name },
      el('h3', {}, el('span', { class: 'name', text: s.name }), ' ', el('span', { class: 'muted', text: bits.join(' · ') }),
        ' ', el('span', { class: 'pill ' + (up === 0 ? 'down' : up < all.length ? 'partial' : 'up'), text: up + '/' + all.length + ' available' })),
      counterList(counters), serviceGraph(s));
    const h = s.http;
    if (h) {
      section.append(counterList([['requests', h.requests], ['bad requests', h.bad_requests, h.bad_requests ? 'warn' : ''],
        ['1xx', h.status_1xx], ['2xx', h.status_2xx], ['3xx', h.status_3xx], ['4xx', h.status_4xx], ['5xx', h.status_5xx, h.status_5xx ? 'warn' : ''],
        ['aborted', h.aborted, h.aborted ? 'warn' : ''], ['upstream connects', h.upstream_connects], ['reuses', h.upstream_reuses]]));
    }
    for (const p of pools) {
      if (p.route) {
        const r = p.route;
        const match = [r.host ? 'host ' + r.host : '', r.path_prefix ? 'path ' + r.path_prefix + '*' : ''].filter(Boolean).join(', ') || 'everything';
        section.append(el('h4', { 'data-route': r.name }, el('span', { class: 'name', text: 'route ' + r.name }), ' ',
          el('span', { class: 'muted', text: [match, r.scheduler].join(' · ') })));
      } else if (s.routes && s.routes.length > 0) {
        section.append(el('h4', {}, el('span', { class: 'name', text: 'default pool' }), ' ', el('span', { class: 'muted', text: 'requests no route matches' })));
      }
      section.append(backendTable(p.name, p.backends, s.protocol));
    }
    return section;
  }

  // backendTable renders one pool; pool is the name actions address: the
  // service, or SERVICE/ROUTE for a route's pool.
  function backendTable(pool, backends, protocol) {
    const reqs = backends.map(requestsOf);
    // Request columns for HTTP services, or wherever requests were counted.
    const hasReqs = reqs.some(Boolean) && (/^http/.test(protocol) || reqs.some((r) => r && (r.requests || r.errors)));
    const hasMean = reqs.some((r) => r && r.mean !== undefined);
    const cols = ['Backend', 'Health', 'Admin', 'Weight', 'Max', 'Active', 'Total', 'Conn/s', 'Conn fail',
      ...(hasReqs ? ['Requests', 'Req/s', 'Errors'] : []), ...(hasMean ? ['Mean'] : []), 'History', 'Bytes in', 'Bytes out', 'Last check', 'Actions'];
    const table = el('table', { class: 'grid backends', 'data-pool': pool },
      el('thead', {}, el('tr', {}, cols.map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, backends.map((b, i) => renderBackend(pool, b, hasReqs ? reqs[i] || {} : null, hasMean))));
    return el('div', { class: 'scroll' }, table);
  }

  function renderBackend(pool, b, reqs, hasMean) {
    const key = pool + '|' + b.address;
    // A director service's backend: flows, and the bytes the director
    // forwarded (the replies bypass it).
    if (b.director) b = { ...b, active: b.director.active_flows, total: b.director.new_flows, bytes_in: b.director.bytes, bytes_out: undefined };
    const h = b.health;
    let health, healthCls;
    if (h) {
      health = h.state;
      healthCls = h.state === 'up' ? 'up' : 'down';
    } else {
      health = b.healthy ? 'up (no check)' : 'down';
      healthCls = b.healthy ? 'up' : 'down';
    }
    const admin = b.admin_state || '—';
    const rowCls = ['role-' + b.role, 'admin-' + (b.admin_state || 'unknown'), healthCls, b.available ? 'available' : 'unavailable'];

    const healthCell = el('td', { class: 'health' }, el('span', { class: 'pill ' + healthCls, text: health }));
    if (h) healthCell.append(' ', el('span', { class: 'muted', title: fullTime(h.since), text: ago(h.since) }));
    if (b.slow_start) healthCell.append(' ', el('span', { class: 'tag', text: 'slow start' }));
    if (!b.available && b.healthy && admin === 'ready') healthCell.append(' ', el('span', { class: 'tag warn', text: 'full' }));
    // Out of the director's ring whatever its health: why.
    const nf = b.director && b.director.not_forwarded;
    if (nf) healthCell.append(' ', el('span', { class: 'tag warn', title: 'the director leaves it out of its ring', text: 'not forwarded' }), el('div', { class: 'reason', text: nf }));

    let check = el('td', { class: 'check muted', text: h ? 'not run yet' : 'no health check' });
    if (h && validTime(h.last_check)) {
      check = el('td', {
        class: 'check ' + (h.last_ok ? 'ok' : 'bad'),
        title: num(h.checks) + ' checks, ' + num(h.failures) + ' failures, ' + num(h.flaps) + ' flaps' + (h.shared > 1 ? ', probe shared by ' + h.shared : ''),
      },
      el('span', { class: 'verdict', text: h.check + ' ' + (h.last_ok ? 'OK' : 'failed') }),
      el('span', { class: 'muted', text: ' ' + Number(h.last_duration_ms || 0).toFixed(1) + ' ms, ' + ago(h.last_check) }),
      h.last_reason ? el('div', { class: 'reason', text: h.last_reason }) : null);
    }

    const actions = el('td', { class: 'actions' });
    if (b.role !== 'fallback') {
      for (const [action, label, state, hint] of [
        ['drain', 'Drain', 'drain', 'no new connections; open ones continue'],
        ['disable', 'Disable', 'maint', 'maintenance: no traffic, health checks continue'],
        ['enable', 'Enable', 'ready', 'back into service'],
      ]) {
        actions.append(el('button', {
          type: 'button', class: 'action ' + action, text: label, title: hint,
          disabled: busy.has(key) || b.admin_state === state,
          'data-action': action, 'data-service': pool, 'data-backend': b.address,
        }));
      }
    }

    return el('tr', { class: rowCls.join(' '), 'data-service': pool, 'data-backend': b.address },
      el('td', { class: 'name' }, b.address, b.role !== 'primary' ? [' ', el('span', { class: 'tag role', text: b.role })] : null), healthCell,
      el('td', { class: 'admin-state' }, el('span', { class: 'pill admin ' + admin, text: admin }),
        b.runtime ? ' ' : null, b.runtime ? el('span', { class: 'tag warn', title: 'changed at runtime; the next reload restores the config file', text: b.runtime === 'added' ? 'added at runtime' : b.runtime + ' set at runtime' }) : null),
      cell(num(b.weight), 'n', b.configured_weight !== undefined && b.configured_weight !== b.weight ? 'configured ' + b.configured_weight + ' (slow start)' : undefined), cell(b.max_connections ? num(b.max_connections) : '∞', 'n'),
      cell(num(b.active), 'n'), cell(num(b.total), 'n'), cell(rate(key, 'total', b.total), 'n rate'),
      cell(num(b.connect_failures), 'n' + (b.connect_failures ? ' warn' : '')),
      reqs ? [cell(num(reqs.requests), 'n'), cell(rate(key, 'requests', reqs.requests), 'n rate'), cell(num(reqs.errors), 'n' + (reqs.errors ? ' warn' : ''))] : null,
      hasMean ? cell(reqs.mean === undefined ? '—' : Number(reqs.mean).toFixed(1) + ' ms', 'n') : null,
      sparkCell(pool, b.address),
      cell(bytes(b.bytes_in), 'n', num(b.bytes_in) + ' B'), b.bytes_out === undefined ? cell('—', 'n', 'replies bypass the director') : cell(bytes(b.bytes_out), 'n', num(b.bytes_out) + ' B'),
      check, actions);
  }

  // sparkCell is a backend's rate and errors over the window.
  function sparkCell(pool, address) {
    const x = histIndex.get(pool + '|' + address);
    return x ? el('td', { class: 'spark' }, chart(x, 120, 20, 'small')) : el('td', { class: 'spark muted', text: '—' });
  }

  // ---- actions ----

  const hints = {
    401: 'enter the admin token (admin.token_file) above',
    403: 'no admin.token_file is configured, so actions are only accepted from the balancer host itself',
    404: 'the service or backend is gone (reloaded?)',
    501: 'this node does not support the action',
  };

  async function act(action, service, address) {
    const key = service + '|' + address;
    const what = action + ' ' + address + ' in ' + service;
    const url = '/api/v1/services/' + encodeURIComponent(service) + '/backends/' + encodeURIComponent(address) + '/' + action;
    const headers = { Accept: 'application/json' };
    if (token()) headers.Authorization = 'Bearer ' + token();
    busy.add(key);
    render();
    try {
      const resp = await fetch(url, { method: 'POST', headers, cache: 'no-store' });
      let body = null;
      try { body = await resp.json(); } catch { /* not JSON: reported by status */ }
      if (!resp.ok) {
        const why = (body && body.error) || resp.statusText;
        message('error', what + ' failed: HTTP ' + resp.status + ' ' + why + (hints[resp.status] ? ' — ' + hints[resp.status] : ''));
        return;
      }
      message('ok', what + ': admin state is now ' + ((body && body.admin_state) || 'changed'));
    } catch (e) {
      message('error', what + ' failed: ' + e.message);
    } finally {
      busy.delete(key);
      poll();
    }
  }

  // ---- wiring ----

  function init() {
    showTokenState();
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('token').value.trim();
      $('token').value = '';
      if (!v) { message('error', 'the token field is empty'); return; }
      setToken(v);
      message('ok', 'token kept for this browser tab');
    });
    $('token-forget').addEventListener('click', () => { setToken(''); message('ok', 'token forgotten'); });
    $('refresh').addEventListener('change', () => (Number($('refresh').value) > 0 ? poll() : schedule()));
    const services = $('services');
    services.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-action]');
      if (btn && !btn.disabled) act(btn.dataset.action, btn.dataset.service, btn.dataset.backend);
    });
    services.addEventListener('pointerdown', () => { holdingSince = Date.now(); });
    const release = () => setTimeout(() => {
      holdingSince = 0;
      if (pendingRender) render();
    }, 0);
    document.addEventListener('pointerup', release);
    document.addEventListener('pointercancel', release);
    document.addEventListener('visibilitychange', () => (document.hidden ? schedule() : poll()));
    poll();
  }

  init();
})();
