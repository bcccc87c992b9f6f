// porthole's web inspector: the exchanges captured through the tunnels, live.
//
// Everything captured is hostile input (any client on the internet chose the
// request, the local service the response): it reaches the page only through
// textContent, attribute values and URLs built from ids, never through
// innerHTML. No framework, no build step, nothing loaded from elsewhere.
'use strict';

(() => {
  const MAX_ROWS = 1000;       // the API's own limit on one list
  const HEX_BYTES = 4096;      // bytes shown in a hex dump
  const TEXT_CHARS = 200000;   // characters of a body shown as text

  // ---- state ----------------------------------------------------------------

  const exchanges = new Map();  // id -> summary (or full exchange)
  const rows = new Map();       // id -> row element
  const checked = new Set();    // ids ticked for the HAR export
  const details = new Map();    // id -> full exchange (bodies included), newest use last
  const DETAILS_KEPT = 20;      // full exchanges held (bodies may be MiBs each)
  let selected = null;          // id of the exchange in the detail pane
  let detailToken = 0;          // drops answers for a selection left since

  const $ = (id) => document.getElementById(id);
  const list = $('request-list');
  const detail = $('detail');
  const filters = {
    tunnel: $('filter-tunnel'),
    method: $('filter-method'),
    status: $('filter-status'),
    path: $('filter-path'),
  };

  // Keeps a full exchange for the detail pane, dropping the least recently
  // kept beyond DETAILS_KEPT.
  function remember(id, x) {
    details.delete(id);
    details.set(id, x);
    while (details.size > DETAILS_KEPT) {
      details.delete(details.keys().next().value);
    }
  }

  // ---- DOM building (text only) -------------------------------------------------

  // h('div', {class: 'x', dataset: {testid: 'y'}, onclick: f}, 'text', child, ...)
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) {
        continue;
      }
      if (k === 'dataset') {
        Object.assign(el.dataset, v);
      } else if (k.startsWith('on')) {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'text') {
        el.textContent = v;
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) {
        continue;
      }
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function tid(name, extra) {
    return Object.assign({testid: name}, extra || {});
  }

  // Only http(s) URLs become links; anything else stays text.
  function safeHref(url) {
    try {
      const u = new URL(url);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch {
      return null;
    }
  }

  const apiPath = (id, rest) => `/api/requests/http/${encodeURIComponent(id)}${rest || ''}`;

  // ---- API --------------------------------------------------------------------

  class ApiError extends Error {}

  // The JSON of an answer; an error answer becomes an ApiError in plain words.
  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: body === undefined ? {} : {'Content-Type': 'application/json'},
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError('the inspector is not answering (is porthole still running?)');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const why = data && typeof data.error === 'string' ? data.error : (text || res.statusText);
      throw new ApiError(`${why} (HTTP ${res.status})`);
    }
    return data;
  }

  async function apiText(path) {
    let res;
    try {
      res = await fetch(path, {cache: 'no-store'});
    } catch {
      throw new ApiError('the inspector is not answering (is porthole still running?)');
    }
    const text = await res.text();
    if (!res.ok) {
      let why = text;
      try {
        why = JSON.parse(text).error || text;
      } catch { /* plain text */ }
      throw new ApiError(`${why} (HTTP ${res.status})`);
    }
    return text;
  }

  // ---- the error banner ---------------------------------------------------------

  // `key` names what failed, so that its next success can take the banner
  // down without hiding another failure.
  function showError(what, err, key) {
    $('error-text').textContent = `${what}: ${err instanceof Error ? err.message : String(err)}`;
    $('error-banner').dataset.key = key || '';
    $('error-banner').hidden = false;
  }

  function hideError(key) {
    const banner = $('error-banner');
    if (typeof key === 'string' && banner.dataset.key !== key) {
      return;
    }
    banner.hidden = true;
    $('error-text').textContent = '';
  }

  $('error-close').addEventListener('click', () => hideError());

  // ---- formatting -------------------------------------------------------------------

  function header(headers, name) {
    if (!headers) {
      return null;
    }
    const want = name.toLowerCase();
    for (const [k, v] of Object.entries(headers)) {
      if (k.toLowerCase() === want) {
        return Array.isArray(v) ? v[0] : String(v);
      }
    }
    return null;
  }

  function duration(us) {
    if (typeof us !== 'number' || us < 0) {
      return '';
    }
    if (us < 1000) {
      return `${us} µs`;
    }
    if (us < 1000000) {
      return `${(us / 1000).toFixed(us < 10000 ? 1 : 0)} ms`;
    }
    return `${(us / 1000000).toFixed(2)} s`;
  }

  function clock(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) {
      return '';
    }
    const p = (n, w) => String(n).padStart(w || 2, '0');
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  // Local time as 2026-11-25 17:43:06.901.
  function fullTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) {
      return String(iso || '');
    }
    const p = (n, w) => String(n).padStart(w || 2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
      `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  function bytes(n) {
    if (typeof n !== 'number') {
      return '';
    }
    if (n < 1024) {
      return `${n} B`;
    }
    if (n < 1024 * 1024) {
      return `${(n / 1024).toFixed(1)} KiB`;
    }
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function statusClass(x) {
    if (x.error && !x.response) {
      return 's-err';
    }
    const code = x.response && x.response.status_code;
    if (!code) {
      return 's-none';
    }
    return `s-${Math.floor(code / 100)}xx`;
  }

  function statusText(x) {
    if (x.response && x.response.status_code) {
      return String(x.response.status_code);
    }
    return x.error ? 'failed' : '—';
  }

  // ---- filters -------------------------------------------------------------------

  function matches(x) {
    const req = x.request || {};
    if (filters.tunnel.value && x.tunnel_name !== filters.tunnel.value) {
      return false;
    }
    if (filters.method.value && req.method !== filters.method.value) {
      return false;
    }
    const st = filters.status.value;
    if (st) {
      const code = x.response && x.response.status_code;
      if (st === 'error') {
        if (code && !x.error) {
          return false;
        }
      } else if (!code || String(Math.floor(code / 100)) !== st) {
        return false;
      }
    }
    const text = filters.path.value.trim().toLowerCase();
    if (text && !String(req.uri || '').toLowerCase().includes(text)) {
      return false;
    }
    return true;
  }

  function applyFilters() {
    let shown = 0;
    for (const [id, row] of rows) {
      const ok = matches(exchanges.get(id));
      row.hidden = !ok;
      shown += ok ? 1 : 0;
    }
    const total = rows.size;
    $('request-count').textContent = total === 0 ? '' :
      shown === total ? `${total} exchange${total === 1 ? '' : 's'}` : `${shown} of ${total} shown`;
    const empty = $('empty-list');
    empty.hidden = shown !== 0;
    empty.textContent = total === 0 ? 'Waiting for traffic through the tunnels…' :
      'No exchange matches the filters.';
    updateSelectAll();
  }

  for (const el of Object.values(filters)) {
    el.addEventListener(el.tagName === 'INPUT' ? 'input' : 'change', applyFilters);
  }

  // Keeps a select's options: the fixed ones, then every value seen.
  function addOption(select, value) {
    if (!value || [...select.options].some((o) => o.value === value)) {
      return;
    }
    select.append(h('option', {value}, value));
  }

  // ---- the list -------------------------------------------------------------------

  function rowFor(x) {
    const req = x.request || {};
    const id = String(x.id);
    const box = h('input', {
      type: 'checkbox', class: 'pick', title: 'select for the HAR export',
      'aria-label': `select #${id}`, dataset: tid('row-select'),
    });
    box.checked = checked.has(id);
    box.addEventListener('click', (e) => e.stopPropagation());
    box.addEventListener('change', () => {
      if (box.checked) {
        checked.add(id);
      } else {
        checked.delete(id);
      }
      updateExport();
    });
    const path = h('span', {class: 'path', dataset: tid('row-path')}, req.uri || '');
    const badges = [];
    if (x.replay_of !== undefined && x.replay_of !== null) {
      badges.push(h('span', {
        class: 'badge replay', dataset: tid('replay-badge', {replayOf: String(x.replay_of)}),
        title: `replay of exchange #${x.replay_of}`,
      }, `replay of #${x.replay_of}`));
    }
    if (x.websocket) {
      badges.push(h('span', {class: 'badge ws', title: 'WebSocket'}, 'ws'));
    }
    if (x.error) {
      badges.push(h('span', {class: 'badge err', title: x.error}, 'error'));
    }
    const title = `#${id} ${req.method || ''} ${req.uri || ''}` +
      (x.error ? `\n${x.error}` : '');
    const row = h('div', {
      class: `row ${statusClass(x)}`, role: 'option', title,
      dataset: tid('request-row', {id}),
      onclick: () => select(id),
    },
    box,
    h('span', {class: 'method', dataset: tid('row-method')}, req.method || '?'),
    h('span', {class: 'pathcell'}, path, badges),
    h('span', {class: 'status r', dataset: tid('row-status')}, statusText(x)),
    h('span', {class: 'dur r'}, duration(x.duration_us)),
    h('span', {class: 'at r', title: fullTime(x.start)}, clock(x.start)));
    if (id === selected) {
      row.classList.add('selected');
      row.setAttribute('aria-selected', 'true');
    }
    return row;
  }

  // Adds or replaces one exchange, keeping the list newest first (by id).
  function upsert(x) {
    if (!x || x.id === undefined || x.id === null) {
      return false;
    }
    const id = String(x.id);
    const old = exchanges.get(id);
    exchanges.set(id, x);
    const changed = old !== undefined && fingerprint(old) !== fingerprint(x);
    if (old !== undefined && !changed && rows.has(id)) {
      return false;  // already shown as it is
    }
    if (changed) {
      details.delete(id);
    }
    addOption(filters.tunnel, x.tunnel_name);
    addOption(filters.method, x.request && x.request.method);
    const row = rowFor(x);
    row.hidden = !matches(x);
    const before = rows.get(id);
    if (before) {
      before.replaceWith(row);
    } else if (!list.firstElementChild || Number(list.firstElementChild.dataset.id) < Number(id)) {
      list.prepend(row);  // the usual case: the newest yet
    } else {
      let next = null;
      const n = Number(id);
      for (const [otherId, other] of rows) {
        if (Number(otherId) < n && (!next || Number(otherId) > Number(next.dataset.id))) {
          next = other;
        }
      }
      list.insertBefore(row, next);
    }
    rows.set(id, row);
    while (rows.size > MAX_ROWS) {
      const oldest = [...rows.keys()].reduce((a, b) => (Number(a) < Number(b) ? a : b));
      forget(oldest);
    }
    return changed;
  }

  // What can change in a stored exchange (its summary, not its bodies).
  function fingerprint(x) {
    const r = x.response;
    return JSON.stringify([r && r.status_code, r && r.body && r.body.size, x.duration_us,
      x.error, x.websocket]);
  }

  function forget(id) {
    const row = rows.get(id);
    if (row) {
      row.remove();
    }
    rows.delete(id);
    exchanges.delete(id);
    details.delete(id);
    checked.delete(id);
  }

  function clearAll() {
    for (const id of [...rows.keys()]) {
      forget(id);
    }
    selected = null;
    showNothing();
    applyFilters();
    updateExport();
  }

  function updateExport() {
    for (const id of [...checked]) {
      if (!rows.has(id)) {
        checked.delete(id);
      }
    }
    const b = $('export-selected');
    b.disabled = checked.size === 0;
    b.textContent = `Export selected (${checked.size}) as HAR`;
    updateSelectAll();
  }

  function updateSelectAll() {
    const shown = [...rows].filter(([, r]) => !r.hidden).map(([id]) => id);
    const all = $('select-all');
    all.checked = shown.length > 0 && shown.every((id) => checked.has(id));
    all.indeterminate = !all.checked && shown.some((id) => checked.has(id));
  }

  $('select-all').addEventListener('change', (e) => {
    for (const [id, row] of rows) {
      if (row.hidden) {
        continue;
      }
      if (e.target.checked) {
        checked.add(id);
      } else {
        checked.delete(id);
      }
      row.querySelector('.pick').checked = e.target.checked;
    }
    updateExport();
  });

  // Keyboard: up and down move through the shown rows.
  list.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') {
      return;
    }
    const shown = [...list.children].filter((r) => !r.hidden);
    if (shown.length === 0) {
      return;
    }
    let i = shown.findIndex((r) => r.dataset.id === selected);
    i = i < 0 ? 0 : Math.max(0, Math.min(shown.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)));
    select(shown[i].dataset.id);
    shown[i].scrollIntoView({block: 'nearest'});
    e.preventDefault();
  });

  // ---- tunnels ---------------------------------------------------------------------

  function showTunnels(list) {
    const tunnels = Array.isArray(list) ? list : [];
    const ul = document.querySelector('[data-testid="tunnel-list"]');
    ul.replaceChildren();
    if (tunnels.length === 0) {
      ul.append(h('li', {class: 'muted'}, 'no tunnel up'));
    }
    for (const t of tunnels) {
      const href = safeHref(t.public_url);
      const url = href ?
        h('a', {href, target: '_blank', rel: 'noopener noreferrer', dataset: tid('tunnel-url')},
          t.public_url) :
        h('span', {dataset: tid('tunnel-url')}, t.public_url || '');
      ul.append(h('li', {dataset: tid('tunnel', {name: t.name || ''})},
        h('span', {class: 'tname'}, t.name || ''),
        h('span', {class: 'proto'}, t.proto || ''),
        url,
        h('span', {class: 'arrow'}, '→'),
        h('span', {class: 'addr'}, (t.config && t.config.addr) || '')));
      addOption(filters.tunnel, t.name);
    }
  }

  async function loadTunnels() {
    try {
      const data = await api('GET', '/api/tunnels');
      showTunnels(data && data.tunnels);
      hideError('tunnels');
    } catch (e) {
      showError('Could not load the tunnels', e, 'tunnels');
    }
  }

  // ---- loading and live updates -------------------------------------------------------

  async function loadList() {
    const before = new Set(rows.keys());
    let got;
    try {
      const data = await api('GET', `/api/requests/http?limit=${MAX_ROWS}`);
      got = (data && data.requests) || [];
      showDropped(data && data.dropped);
    } catch (e) {
      showError('Could not load the exchanges', e, 'list');
      return;
    }
    hideError('list');
    // What the server no longer keeps (cleared or pruned while the stream
    // was down) leaves the list; what arrived meanwhile by event stays.
    const ids = new Set(got.map((x) => String(x.id)));
    const oldest = got.length === MAX_ROWS ? Math.min(...got.map((x) => Number(x.id))) : -Infinity;
    for (const id of before) {
      if (!ids.has(id) && Number(id) >= oldest) {
        forget(id);
      }
    }
    for (const x of got.slice().reverse()) {
      upsert(x);
    }
    applyFilters();
    updateExport();
    if (selected !== null && !rows.has(selected)) {
      selected = null;
      showNothing();
    }
    if (selected === null) {
      const wanted = decodeURIComponent(location.hash.replace(/^#/, ''));
      if (wanted && rows.has(wanted)) {
        select(wanted);
      }
    }
  }

  // Exchanges the capture had to drop (the store fell behind the traffic).
  function showDropped(n) {
    const el = $('dropped');
    el.hidden = !(typeof n === 'number' && n > 0);
    el.textContent = el.hidden ? '' : `${n} not captured (too much traffic)`;
  }

  function connectEvents() {
    const status = $('connection-status');
    const setState = (state, text) => {
      status.dataset.state = state;
      status.textContent = text;
    };
    const source = new EventSource('/api/events');
    source.addEventListener('open', () => {
      setState('live', 'live');
      // Anything stored while the stream was down comes with the list.
      loadList();
      loadTunnels();
    });
    source.addEventListener('error', () => {
      setState('down', source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…');
    });
    source.addEventListener('request', (e) => {
      let x;
      try {
        x = JSON.parse(e.data);
      } catch {
        return;  // a malformed event
      }
      const changed = upsert(x);
      applyFilters();
      updateExport();
      if (changed && String(x.id) === selected) {
        showDetail(selected);  // the selected exchange changed: show its new state
      }
    });
    source.addEventListener('clear', () => clearAll());
    source.addEventListener('tunnels', (e) => {
      try {
        const data = JSON.parse(e.data);
        showTunnels(data && data.tunnels);
      } catch { /* ignore a malformed event */ }
    });
  }

  // ---- the detail pane ------------------------------------------------------------------

  function showNothing() {
    detail.dataset.id = '';
    detail.replaceChildren(h('p', {class: 'empty'},
      rows.size ? 'Select an exchange on the left to see its request and response.' :
        'Nothing captured yet. Requests through the tunnels above show up here as they happen.'));
    if (location.hash) {
      history.replaceState(null, '', location.pathname + location.search);
    }
  }

  function select(id) {
    id = String(id);
    if (selected !== null && rows.has(selected)) {
      rows.get(selected).classList.remove('selected');
      rows.get(selected).removeAttribute('aria-selected');
    }
    selected = id;
    const row = rows.get(id);
    if (row) {
      row.classList.add('selected');
      row.setAttribute('aria-selected', 'true');
    }
    history.replaceState(null, '', `#${encodeURIComponent(id)}`);
    showDetail(id);
  }

  async function showDetail(id) {
    const token = ++detailToken;
    let x = details.get(id);
    if (!x) {
      const summary = exchanges.get(id);
      if (summary) {
        // Headers at once; bodies when the full exchange arrives.
        render(summary, true);
      }
      try {
        x = await api('GET', apiPath(id));
      } catch (e) {
        if (token === detailToken) {
          detail.replaceChildren(h('p', {class: 'error-text', dataset: tid('detail-error')},
            `Could not load exchange #${id}: ${e.message}`));
        }
        return;
      }
      remember(id, x);
    }
    if (token === detailToken) {
      render(x, false);
    }
  }

  function render(x, partial) {
    const id = String(x.id);
    const req = x.request || {};
    const res = x.response;
    detail.dataset.id = id;
    detail.dataset.loaded = partial ? 'partial' : 'full';

    const meta = [
      h('span', {}, `#${id}`),
      h('span', {}, `tunnel ${x.tunnel_name || '?'}`),
      x.remote_addr === 'replay' ? h('span', {}, 'sent by the inspector') :
        x.remote_addr ? h('span', {}, `from ${x.remote_addr}`) : null,
      h('span', {title: String(x.start || '')}, fullTime(x.start)),
      x.duration_us !== undefined ? h('span', {}, duration(x.duration_us)) : null,
    ];
    if (x.replay_of !== undefined && x.replay_of !== null) {
      meta.push(h('a', {
        href: `#${encodeURIComponent(String(x.replay_of))}`, class: 'badge replay',
        dataset: tid('detail-replay-of'),
        onclick: (e) => {
          e.preventDefault();
          if (rows.has(String(x.replay_of))) {
            select(String(x.replay_of));
          }
        },
      }, `replay of #${x.replay_of}`));
    }

    const actions = h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'primary', dataset: tid('replay-button'),
        title: 'send the same request to the local service again', onclick: () => replay(id)},
      'Replay'),
      h('button', {type: 'button', dataset: tid('edit-replay-button'),
        onclick: () => toggleEdit(x)}, 'Edit and replay…'),
      h('button', {type: 'button', dataset: tid('curl-button'), onclick: () => toggleCurl(id)},
        'Copy as curl'),
      h('a', {class: 'button', href: `/api/requests/har?ids=${encodeURIComponent(id)}`,
        download: `porthole-${id}.har`, dataset: tid('export-har-one')}, 'HAR'));

    const parts = [
      h('div', {class: 'detail-head'},
        h('div', {class: 'line'},
          h('span', {class: 'method'}, req.method || '?'),
          h('span', {class: 'uri', dataset: tid('detail-uri')}, req.uri || ''),
          h('span', {class: `pill ${statusClass(x)}`, dataset: tid('detail-status')},
            res ? (res.status || String(res.status_code)) : (x.error ? 'failed' : 'no response'))),
        h('div', {class: 'meta'}, meta),
        actions),
      h('div', {class: 'notice', dataset: tid('detail-notice'), id: 'detail-notice', hidden: true}),
      h('div', {id: 'detail-tool'}),
    ];
    if (x.error) {
      parts.push(h('p', {class: 'error-text', dataset: tid('exchange-error')},
        `This exchange failed: ${x.error}`));
    }
    if (x.websocket) {
      const w = x.websocket;
      parts.push(h('p', {class: 'muted'},
        `WebSocket: ${w.messages_in ?? 0} message(s) in (${bytes(w.bytes_in ?? 0)}), ` +
        `${w.messages_out ?? 0} out (${bytes(w.bytes_out ?? 0)})`));
    }
    parts.push(message('Request', 'request', id, req, `${req.method || ''} ${req.uri || ''} ${req.proto || ''}`, partial));
    if (res) {
      parts.push(message('Response', 'response', id, res, `${res.proto || ''} ${res.status || res.status_code}`, partial));
    } else {
      parts.push(h('section', {class: 'msg'}, h('h2', {}, 'Response'),
        h('p', {class: 'muted', dataset: tid('response-none')},
          x.error ? 'No response: the exchange failed.' : 'No response (yet).')));
    }
    detail.replaceChildren(...parts);
  }

  function message(title, which, id, m, firstLine, partial) {
    const headers = m.headers || {};
    const table = h('table', {class: 'headers', dataset: tid(`${which}-headers`)});
    for (const [name, values] of Object.entries(headers)) {
      for (const v of (Array.isArray(values) ? values : [values])) {
        table.append(h('tr', {dataset: tid('header-row', {name})},
          h('th', {}, name), h('td', {}, String(v))));
      }
    }
    if (table.rows.length === 0) {
      table.append(h('tr', {}, h('td', {class: 'muted'}, 'no headers')));
    }
    const bodyInfo = m.body || {};
    return h('section', {class: 'msg', dataset: tid(`${which}-section`)},
      h('h2', {}, title, h('span', {class: 'first-line'}, firstLine)),
      h('h3', {}, 'Headers'),
      table,
      m.grpc ? grpcView(which, m.grpc) : null,
      m.trailers && Object.keys(m.trailers).length ? trailersView(which, m.trailers) : null,
      h('h3', {}, 'Body', h('span', {class: 'muted small'},
        bodySummary(bodyInfo, header(headers, 'Content-Encoding')))),
      h('div', {class: 'body', dataset: tid(`${which}-body`)},
        partial ? h('p', {class: 'muted'}, 'loading…') : bodyView(which, id, headers, bodyInfo)));
  }

  // A gRPC message's frames (each a flag and a length) and the call's status.
  function grpcView(which, g) {
    const items = (g.messages || []).map((m, i) => h('li', {dataset: tid('grpc-message')},
      `message ${i + 1}: ${bytes(m.length)}${m.compressed ? ', compressed' : ''}` +
      `${m.whole ? '' : ' (cut at the capture limit)'}`));
    const status = g.status === undefined ? null :
      h('p', {class: g.status === '0' ? 'ok-text' : 'error-text', dataset: tid('grpc-status')},
        `grpc-status ${g.status}${g.status === '0' ? ' (OK)' : ''}` +
        (g.status_message ? `: ${decodeGrpcMessage(g.status_message)}` : ''));
    return h('div', {class: 'grpc', dataset: tid(`${which}-grpc`)},
      h('h3', {}, 'gRPC'),
      status,
      items.length ? h('ul', {}, items) : h('p', {class: 'muted'}, 'no messages'));
  }

  // grpc-message is percent-encoded (gRPC over HTTP/2, "Responses").
  function decodeGrpcMessage(s) {
    try {
      return decodeURIComponent(s);
    } catch (e) {
      return s;
    }
  }

  function trailersView(which, trailers) {
    const table = h('table', {class: 'headers', dataset: tid(`${which}-trailers`)});
    for (const [name, values] of Object.entries(trailers)) {
      for (const v of (Array.isArray(values) ? values : [values])) {
        table.append(h('tr', {}, h('th', {}, name), h('td', {}, String(v))));
      }
    }
    return h('div', {}, h('h3', {}, 'Trailers'), table);
  }

  function bodySummary(b, encoding) {
    if (!b || !b.size) {
      return '';
    }
    let s = ` ${bytes(b.size)}`;
    if (encoding && encoding.toLowerCase() !== 'identity') {
      s += ` ${encoding}, shown decoded`;
    }
    if (b.truncated) {
      s += `, first ${bytes(b.captured)} captured`;
    }
    return s;
  }

  function bodyView(which, id, headers, b) {
    if (!b || !b.size) {
      return h('p', {class: 'muted'}, 'no body');
    }
    const type = (header(headers, 'Content-Type') || '').toLowerCase();
    const url = apiPath(id, `/${which}/body`);
    const links = h('div', {class: 'body-links'},
      h('a', {href: `${url}?download=1`, dataset: tid(`${which}-download`)}, 'download'),
      h('a', {href: `${url}?raw=1`, target: '_blank', rel: 'noopener'}, 'raw bytes'),
      h('a', {href: url, target: '_blank', rel: 'noopener'}, 'open'));
    const out = [];
    if (b.truncated) {
      out.push(h('p', {class: 'warn'},
        `Only the first ${bytes(b.captured)} of ${bytes(b.size)} were captured.`));
    }
    if (b.decode_error) {
      out.push(h('p', {class: 'warn'}, `Could not decode the body: ${b.decode_error}`));
    }
    if (type.startsWith('image/')) {
      out.push(h('img', {src: url, alt: `${which} body (${type})`, class: 'preview',
        dataset: tid(`${which}-image`)}));
    } else if (typeof b.text === 'string') {
      out.push(textView(type, b.text));
    } else {
      out.push(hexView(b, url));
    }
    out.push(links);
    return out;
  }

  function textView(type, text) {
    if (type.includes('json') || /^\s*[[{]/.test(text)) {
      try {
        return h('pre', {class: 'code json', dataset: tid('body-json')},
          clip(JSON.stringify(JSON.parse(text), null, 2)));
      } catch { /* not JSON after all: shown as text */ }
    }
    if (type.includes('application/x-www-form-urlencoded')) {
      const table = h('table', {class: 'headers form', dataset: tid('body-form')});
      for (const [k, v] of new URLSearchParams(text)) {
        table.append(h('tr', {}, h('th', {}, k), h('td', {}, v)));
      }
      return [table, h('details', {}, h('summary', {}, 'as sent'),
        h('pre', {class: 'code'}, clip(text)))];
    }
    return h('pre', {class: 'code', dataset: tid('body-text')}, clip(text));
  }

  function clip(text) {
    return text.length > TEXT_CHARS ?
      `${text.slice(0, TEXT_CHARS)}\n… (${text.length - TEXT_CHARS} more characters: download to see all)` :
      text;
  }

  // A hex dump of the first HEX_BYTES of the decoded body (fetched), or of
  // the bytes as sent when that fails.
  function hexView(b, url) {
    const pre = h('pre', {class: 'code hex', dataset: tid('body-hex')});
    const label = h('p', {class: 'muted small'}, 'binary body:');
    const raw = () => {
      try {
        const bin = atob(b.raw_base64 || '');
        const data = new Uint8Array(Math.min(bin.length, HEX_BYTES));
        for (let i = 0; i < data.length; i++) {
          data[i] = bin.charCodeAt(i);
        }
        label.textContent = 'binary body, bytes as sent:';
        pre.textContent = hexDump(data, b.captured ?? b.size);
      } catch {
        pre.textContent = '(binary body not shown)';
      }
    };
    fetch(url, {cache: 'no-store'})
      .then((res) => (res.ok ? res.arrayBuffer() : Promise.reject(new Error(res.statusText))))
      .then((buf) => {
        pre.textContent = hexDump(new Uint8Array(buf, 0, Math.min(buf.byteLength, HEX_BYTES)),
          buf.byteLength);
      })
      .catch(raw);
    return [label, pre];
  }

  function hexDump(data, total) {
    const lines = [];
    for (let off = 0; off < data.length; off += 16) {
      const chunk = data.subarray(off, off + 16);
      let hex = '';
      let ascii = '';
      for (let i = 0; i < 16; i++) {
        if (i < chunk.length) {
          hex += `${chunk[i].toString(16).padStart(2, '0')} `;
          ascii += chunk[i] >= 0x20 && chunk[i] < 0x7f ? String.fromCharCode(chunk[i]) : '.';
        } else {
          hex += '   ';
        }
        if (i === 7) {
          hex += ' ';
        }
      }
      lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
    }
    if (total > data.length) {
      lines.push(`… the first ${bytes(data.length)} of ${bytes(total)}: download to see all`);
    }
    return lines.join('\n');
  }

  function notice(text, kind, extra) {
    const el = $('detail-notice');
    if (!el) {
      return;
    }
    el.className = `notice ${kind || ''}`;
    el.replaceChildren(text, ...(extra || []));
    el.hidden = false;
  }

  // ---- actions ---------------------------------------------------------------------------

  async function replay(id, modify) {
    const buttons = detail.querySelectorAll('.actions button, .edit button');
    buttons.forEach((b) => { b.disabled = true; });
    notice(modify ? 'Sending the edited request…' : 'Replaying…', 'busy');
    let x;
    try {
      x = await api('POST', '/api/requests/http', modify ? {id, modify} : {id});
    } catch (e) {
      buttons.forEach((b) => { b.disabled = false; });
      notice(`Replay of #${id} failed: ${e.message}`, 'bad');
      return;
    }
    buttons.forEach((b) => { b.disabled = false; });
    if (x && x.id !== undefined) {
      upsert(x);
      remember(String(x.id), x);
      applyFilters();
      const status = x.response ? (x.response.status || x.response.status_code) :
        (x.error ? `failed: ${x.error}` : 'no response');
      notice(`Replayed as #${x.id}: ${status}. `, 'good',
        [h('a', {href: `#${encodeURIComponent(String(x.id))}`, dataset: tid('view-replay'),
          onclick: (e) => { e.preventDefault(); select(String(x.id)); }}, `view #${x.id}`)]);
    }
  }

  function toggleEdit(x) {
    const tool = $('detail-tool');
    if (tool.dataset.open === 'edit') {
      tool.dataset.open = '';
      tool.replaceChildren();
      return;
    }
    const req = x.request || {};
    const lines = [];
    for (const [name, values] of Object.entries(req.headers || {})) {
      for (const v of (Array.isArray(values) ? values : [values])) {
        lines.push(`${name}: ${v}`);
      }
    }
    const originalHeaders = lines.join('\n');
    const b = req.body || {};
    const bodyEditable = !b.size || typeof b.text === 'string';
    const originalBody = typeof b.text === 'string' ? b.text : '';

    const method = h('input', {class: 'mono', dataset: tid('edit-method'), value: req.method || 'GET',
      'aria-label': 'method', size: 8, spellcheck: 'false'});
    const uri = h('input', {class: 'mono grow', dataset: tid('edit-uri'), value: req.uri || '/',
      'aria-label': 'path and query', spellcheck: 'false'});
    const headers = h('textarea', {class: 'mono', dataset: tid('edit-headers'), rows: 6,
      spellcheck: 'false', 'aria-label': 'headers, one "Name: value" a line'});
    headers.value = originalHeaders;
    const body = h('textarea', {class: 'mono', dataset: tid('edit-body'), rows: 6,
      spellcheck: 'false', 'aria-label': 'body', disabled: !bodyEditable});
    body.value = bodyEditable ? originalBody : '(binary body: sent unchanged)';
    const problem = h('p', {class: 'error-text', hidden: true, dataset: tid('edit-error')});

    const send = async (e) => {
      e.preventDefault();
      const modify = {};
      const m = method.value.trim();
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(m)) {
        problem.textContent = 'The method must be one word, like GET or POST.';
        problem.hidden = false;
        return;
      }
      if (m !== req.method) {
        modify.method = m;
      }
      if (uri.value !== req.uri) {
        modify.uri = uri.value;
      }
      if (headers.value !== originalHeaders) {
        const parsed = [];  // [name, value] pairs: order and repeated names kept
        for (const [n, line] of headers.value.split('\n').entries()) {
          if (!line.trim()) {
            continue;
          }
          const colon = line.indexOf(':');
          if (colon <= 0) {
            problem.textContent = `Header line ${n + 1} is not "Name: value".`;
            problem.hidden = false;
            return;
          }
          parsed.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
        }
        modify.headers = parsed;
      }
      if (bodyEditable && body.value !== originalBody) {
        modify.body = body.value;
      }
      problem.hidden = true;
      await replay(String(x.id), modify);
    };

    tool.dataset.open = 'edit';
    tool.replaceChildren(h('form', {class: 'edit', dataset: tid('edit-form'), onsubmit: send},
      h('h3', {}, `Edit and replay #${x.id}`),
      h('div', {class: 'line'}, method, uri),
      h('label', {}, 'Headers ', h('span', {class: 'muted small'}, 'one "Name: value" a line; they replace all headers'), headers),
      h('label', {}, 'Body', body),
      problem,
      h('div', {class: 'actions'},
        h('button', {type: 'submit', class: 'primary', dataset: tid('edit-send')}, 'Send'),
        h('button', {type: 'button', dataset: tid('edit-cancel'),
          onclick: () => { tool.dataset.open = ''; tool.replaceChildren(); }}, 'Cancel'))));
    uri.focus();
  }

  async function toggleCurl(id) {
    const tool = $('detail-tool');
    if (tool.dataset.open === 'curl') {
      tool.dataset.open = '';
      tool.replaceChildren();
      return;
    }
    let text;
    try {
      text = await apiText(apiPath(id, '/curl'));
    } catch (e) {
      showError(`Could not make a curl command for #${id}`, e, 'curl');
      return;
    }
    const pre = h('pre', {class: 'code curl', dataset: tid('curl-text')}, text.trim());
    const copied = h('span', {class: 'muted small', dataset: tid('curl-copied')});
    const copy = async () => {
      try {
        await navigator.clipboard.writeText(text.trim());
        copied.textContent = 'copied';
      } catch {
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        copied.textContent = document.execCommand('copy') ? 'copied' : 'selected: press Ctrl+C';
      }
    };
    tool.dataset.open = 'curl';
    tool.replaceChildren(h('div', {class: 'curlbox'},
      h('div', {class: 'line'}, h('h3', {}, 'curl command'),
        h('button', {type: 'button', dataset: tid('curl-copy'), onclick: copy}, 'Copy'), copied),
      pre));
    copy();
  }

  // ---- toolbar -------------------------------------------------------------------------

  function download(url) {
    const a = h('a', {href: url, download: ''});
    document.body.append(a);
    a.click();
    a.remove();
  }

  $('export-selected').addEventListener('click', () => {
    const ids = [...checked].sort((a, b) => Number(a) - Number(b));
    if (ids.length) {
      download(`/api/requests/har?ids=${ids.map(encodeURIComponent).join(',')}`);
    }
  });
  $('export-all').addEventListener('click', () => download('/api/requests/har'));

  $('clear').addEventListener('click', async () => {
    try {
      await api('DELETE', '/api/requests/http');
    } catch (e) {
      showError('Could not clear the history', e, 'clear');
      return;
    }
    hideError('clear');
    clearAll();
  });

  // ---- start -------------------------------------------------------------------------

  showNothing();
  applyFilters();
  loadTunnels();
  connectEvents();
})();
