// A follower's page (opened with ?room=CODE): receives the room by push and draws it, without a Gradio event.
// Installed by components/rooms.py as the JavaScript of a page-load event with no Python handler; LABELS is
// replaced there by {tab key: label}. Protocol: components/room_routes.py. The stage replaces the tabs while
// following; "Explore on my own" opens the presenter's view as a share link (the normal page, served by the
// result cache) with ?own=1; "Rejoin" follows again and catches up by version.
() => {
  const LABELS = __LABELS__;
  const TAKE_HOME_BYTES = __TAKE_HOME_BYTES__;  // the talk-file size cap (LLM_EXPLORER_MAX_TALK_BYTES)
  const params = new URLSearchParams(window.location.search);
  const code = (params.get('room') || '').trim().toLowerCase();
  if (!code || window.__llmxFollow) return;
  const root = window.location.pathname.replace(/[^/]*$/, '') + 'room_push/';
  const base = root + encodeURIComponent(code);
  const st = { code, version: 0, resultVersion: -1, etag: null, es: null, state: null, shown: null, followers: 0,
               fetching: false, again: false, ended: false };
  window.__llmxFollow = st;
  let client = '';
  try {
    client = localStorage.getItem('llmx-room-client') || '';
    if (!client) {
      client = Math.random().toString(36).slice(2) + Date.now().toString(36);
      localStorage.setItem('llmx-room-client', client);
    }
  } catch (e) { client = Math.random().toString(36).slice(2); }

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const style = el('style');
  style.textContent = `
    .llmx-stage { border: 1px solid rgba(128,128,128,0.4); border-radius: 8px; padding: 10px 14px; margin: 6px 0; }
    .llmx-stage-bar { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
    .llmx-stage-bar button { border: 1px solid rgba(128,128,128,0.6); border-radius: 6px; padding: 2px 10px;
      background: transparent; color: inherit; cursor: pointer; }
    .llmx-stage-meta { margin: 6px 0; font-size: 0.9rem; }
    .llmx-stage-meta code { white-space: pre-wrap; }
    .llmx-out { margin: 10px 0; }
    .llmx-note { border-left: 3px solid #4c78a8; padding: 2px 10px; margin: 6px 0; }
    .llmx-out-label { font-size: 0.8rem; opacity: 0.75; margin-bottom: 2px; }
    .llmx-out table { border-collapse: collapse; font-size: 0.85rem; }
    .llmx-out td, .llmx-out th { border: 1px solid rgba(128,128,128,0.35); padding: 2px 6px; }
    .llmx-out pre { max-height: 320px; overflow: auto; font-size: 0.8rem; }
    body.llmx-following #lens-tabs, body.llmx-following .llmx-own-view { display: none !important; }`;
  document.head.append(style);

  const stage = el('div', 'llmx-stage');
  stage.id = 'room-stage-view';
  const bar = el('div', 'llmx-stage-bar');
  const status = el('span', 'llmx-stage-status');
  status.id = 'room-follow-status';
  const leave = el('button', '', 'Explore on my own');
  leave.id = 'room-leave';
  const rejoin = el('button', '', 'Rejoin');
  rejoin.id = 'room-rejoin';
  const takeHome = el('button', '', 'Take home');
  takeHome.id = 'room-take-home';
  takeHome.title = 'Download a summary of this session: scenes, settings, results as shown, your guesses';
  bar.append(status, leave, rejoin, takeHome);
  const meta = el('div', 'llmx-stage-meta');
  meta.id = 'room-view-meta';
  const result = el('div', 'llmx-stage-result');
  result.id = 'room-result';
  // the room's "guess the next token" (components/room_quiz.py): counts pushed as HTML, one guess per page
  const quiz = el('div', 'llmx-quiz-box');
  quiz.id = 'room-quiz-follow';
  quiz.hidden = true;
  const quizView = el('div');
  quizView.id = 'room-quiz-follow-view';
  const quizForm = el('form', 'llmx-stage-bar');
  const quizInput = el('input');
  quizInput.id = 'room-quiz-follow-guess';
  quizInput.maxLength = 200;
  quizInput.placeholder = 'your guess for the next word';
  const quizSend = el('button', '', 'Guess');
  quizSend.id = 'room-quiz-follow-send';
  quizSend.type = 'submit';
  const quizNote = el('span');
  quizNote.id = 'room-quiz-follow-note';
  quizForm.append(quizInput, quizSend, quizNote);
  quiz.append(quizView, quizForm);
  const note = el('div', 'llmx-note');  // the presenter's note for this scene (cleaned HTML, room_notes.py)
  note.id = 'room-note-view';
  note.hidden = true;
  stage.append(bar, meta, note, quiz, result);

  const mountStage = (tries) => {
    const host = document.querySelector('#room-stage');
    if (host) {
      host.replaceChildren(stage);
      // this page's own prompt bar is hidden while following: the stage shows the presenter's prompt
      let bar = document.querySelector('#prompt');
      while (bar && !(bar.querySelector('#model') && bar.querySelector('#serving-recompute'))) bar = bar.parentElement;
      if (bar && bar !== document.body) bar.classList.add('llmx-own-view');
      return;
    }
    if (tries < 100) setTimeout(() => mountStage(tries + 1), 100);
  };
  mountStage(0);

  let plotly = null;
  const ensurePlotly = () => {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotly) {
      plotly = new Promise((resolve, reject) => {
        const script = el('script');
        script.src = root + 'assets/plotly';
        script.onload = () => resolve(window.Plotly);
        script.onerror = reject;
        document.head.append(script);
      });
    }
    return plotly;
  };

  const say = (text) => { status.textContent = text; };
  const label = (tab) => LABELS[tab] || tab || '?';
  const showStatus = () => {
    const tab = st.state ? st.state.tab : null;
    say(`Following room ${code} (${st.followers} following)` + (tab ? ` · the presenter is on ${label(tab)}` : '')
        + (st.version ? ` · version ${st.version}` : ' · waiting for the presenter'));
  };

  const table = (value) => {
    const t = el('table');
    const head = el('tr');
    for (const h of value.headers || []) head.append(el('th', '', String(h)));
    t.append(head);
    for (const row of (value.data || []).slice(0, 500)) {
      const tr = el('tr');
      for (const cell of row) tr.append(el('td', '', cell === null ? '' : String(cell)));
      t.append(tr);
    }
    return t;
  };

  const drawResult = (res) => {
    const key = res ? `${res.tab}|${res.published_at}` : '';
    if (key === st.shown) return;
    st.shown = key;
    remember(null, res, null);
    result.replaceChildren();
    if (!res) return;
    result.append(el('div', 'llmx-out-label', `Result on ${label(res.tab)}`));
    const plots = [];
    for (const out of res.outputs || []) {
      const box = el('div', 'llmx-out llmx-out-' + out.kind);
      box.dataset.output = out.id || '';
      if (out.label && out.kind !== 'html') box.append(el('div', 'llmx-out-label', out.label));
      if (out.kind === 'plot') {
        const div = el('div', 'llmx-plot');
        box.append(div);
        plots.push([div, out.value]);
      } else if (out.kind === 'html') {
        box.insertAdjacentHTML('beforeend', out.value);  // cleaned on the server (room_push.clean_html)
      } else if (out.kind === 'table') {
        box.append(table(out.value));
      } else if (out.kind === 'note') {
        box.append(el('em', '', String(out.value)));
      } else {
        box.append(el('pre', '', typeof out.value === 'string' ? out.value : JSON.stringify(out.value, null, 1)));
      }
      result.append(box);
    }
    if (!plots.length) return;
    ensurePlotly().then((P) => {
      for (const [div, value] of plots) {
        if (value && value.type === 'plotly') {
          const fig = typeof value.plot === 'string' ? JSON.parse(value.plot) : value.plot;
          P.newPlot(div, fig.data || [], fig.layout || {}, { responsive: true, displaylogo: false });
        } else if (value && typeof value.plot === 'string' && value.plot.startsWith('data:image')) {
          const img = el('img');
          img.src = value.plot;
          div.append(img);
        }
      }
    }).catch(() => say('The figures could not be drawn (plotly.js did not load).'));
  };

  // the take-home: what this page was shown, in order, and this page's own guesses (never anyone else's)
  const log = { scenes: [], results: {}, questions: {} };
  const remember = (state, res, q) => {
    if (state) {
      const key = JSON.stringify([state.tab, state.params || {}, state.note_html || '']);
      const last = log.scenes[log.scenes.length - 1];
      if (!last || last.key !== key) {
        log.scenes.push({ key, tab: state.tab, label: label(state.tab), settings: state.params || {},
                          note_html: state.note_html || '', seen_at: new Date().toISOString() });
      }
    }
    if (res && res.tab) log.results[res.tab] = { tab: res.tab, label: label(res.tab), published_at: res.published_at,
                                                 outputs: res.outputs || [] };
    if (q && q.question_id) {
      const mine = (log.questions[q.question_id] || {}).my_guess;
      const { html, ...numbers } = q;
      log.questions[q.question_id] = { ...numbers, my_guess: mine || null };
    }
  };
  const download = () => {
    const doc = { format: 'llm-explorer-take-home', version: 1, room: code, saved_at: new Date().toISOString(),
                  scenes: log.scenes.map(({ key, ...scene }) => scene), results: Object.values(log.results),
                  questions: Object.values(log.questions), notes: [] };
    let text = JSON.stringify(doc, null, 1);
    const size = (t) => new Blob([t]).size;
    while (size(text) > TAKE_HOME_BYTES && doc.results.some((r) => r.outputs.length)) {  // oldest results first
      const r = doc.results.find((x) => x.outputs.length);
      r.outputs = [];
      doc.notes.push(`The outputs of ${r.label} were left out: the file is capped at ${TAKE_HOME_BYTES} bytes.`);
      text = JSON.stringify(doc, null, 1);
    }
    const a = el('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    a.download = `llm-explorer-session-${code}.json`;
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  };
  takeHome.onclick = download;

  let quizId = null;
  const drawQuiz = (q) => {
    quiz.hidden = !q;
    if (!q) return;
    quizView.innerHTML = q.html || '';  // cleaned on the server (room_push.clean_html)
    if (q.question_id !== quizId) { quizId = q.question_id; quizNote.textContent = ''; quizInput.value = ''; }
    remember(null, null, q);
    quizForm.hidden = q.state !== 'open';
  };
  quizForm.onsubmit = async (event) => {
    event.preventDefault();
    try {
      const r = await fetch(base + '/guess', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ question_id: quizId, guess: quizInput.value, client }) });
      const text = await r.text();
      quizNote.textContent = r.ok ? JSON.parse(text).message : text;
      const entry = log.questions[quizId];
      if (r.ok && entry && !entry.my_guess) entry.my_guess = { typed: quizInput.value, ...JSON.parse(text) };
    } catch (e) { quizNote.textContent = 'The guess did not reach the server: ' + e; }
  };

  const drawView = (state) => {
    st.state = state || {};
    const p = st.state.params || {};
    meta.replaceChildren();
    meta.append(el('b', '', label(st.state.tab)));
    if (p.prompt !== undefined) {
      meta.append(document.createTextNode(' · prompt: '));
      meta.append(el('code', '', p.prompt));
    }
    const own = (st.state.tab || '') + '.';
    const rest = Object.entries(p).filter(([k]) => k === 'model' || k.startsWith(own));
    if (rest.length) meta.append(document.createTextNode(' · ' + rest.map(([k, v]) => `${k.split('.').pop()}: ${v}`).join(', ')));
    note.innerHTML = st.state.note_html || '';  // cleaned on the server (room_push.clean_html)
    note.hidden = !st.state.note_html;
    remember(st.state, null, null);
    showStatus();
  };

  const pull = async () => {
    if (st.fetching) { st.again = true; return; }
    st.fetching = true;
    try {
      const response = await fetch(base + '/payload', { cache: 'no-store',
                                                        headers: st.etag ? { 'If-None-Match': st.etag } : {} });
      if (response.status === 200) {
        st.etag = response.headers.get('ETag');
        const payload = await response.json();
        if (payload.version >= st.version) { st.version = payload.version; drawView(payload.state); drawQuiz(payload.quiz); }
        drawResult(payload.result);
      } else if (response.status === 404) {
        stop(await response.text());
      }
    } catch (e) {
      say('Could not read the room: ' + e);
    } finally {
      st.fetching = false;
      if (st.again) { st.again = false; pull(); }
    }
  };

  const stop = (reason) => {
    st.ended = true;
    if (st.es) st.es.close();
    say(reason);
    leave.hidden = true;
    rejoin.hidden = true;
    document.body.classList.remove('llmx-following');
  };

  const connect = () => {
    if (st.es) st.es.close();
    const es = new EventSource(`${base}/events?client=${encodeURIComponent(client)}&since=${st.version}`);
    st.es = es;
    es.addEventListener('version', (event) => {  // the view travels in the event, a small new result too
      const data = JSON.parse(event.data);
      st.followers = data.followers;
      st.version = data.version;
      drawView(data.state);
      drawQuiz(data.quiz);
      if (data.result_version !== st.resultVersion) {
        st.resultVersion = data.result_version;
        if (data.result !== undefined) drawResult(data.result);  // inline: no request
        else pull();  // a big result (or one this page skipped past) is fetched once
      }
    });
    es.addEventListener('followers', (event) => { st.followers = Number(event.data) || 0; showStatus(); });
    es.addEventListener('ended', (event) => stop('The room has ended. ' + JSON.parse(event.data).reason));
    es.onerror = () => {
      if (st.ended) return;
      if (es.readyState !== EventSource.CLOSED) { say('Connection lost; reconnecting…'); return; }
      // refused (a bad code, a cap): ask once more to read the reason
      fetch(`${base}/events?client=${encodeURIComponent(client)}&probe=1`).then(async (r) => {
        if (!r.ok) stop(`Cannot follow room ${code}: ${await r.text()}`);
        else { if (r.body) r.body.cancel(); setTimeout(connect, 1000); }
      }).catch(() => setTimeout(connect, 2000));
    };
  };

  const shareLink = () => {
    const state = st.state || {};
    const q = new URLSearchParams({ room: code, own: '1' });
    if (state.tab) q.set('tab', state.tab);
    for (const [k, v] of Object.entries(state.params || {})) q.set(k, v);
    return window.location.pathname + '?' + q.toString();
  };
  leave.onclick = () => { if (st.es) st.es.close(); window.location.assign(shareLink()); };
  rejoin.onclick = () => { window.location.assign(window.location.pathname + '?room=' + encodeURIComponent(code)); };

  if (params.get('own') === '1') {
    leave.hidden = true;
    meta.textContent = '';
    say(`Exploring on your own (room ${code}): the presenter's changes no longer reach this page.`);
    return;
  }
  rejoin.hidden = true;
  document.body.classList.add('llmx-following');
  say(`Joining room ${code}…`);
  connect();
}
