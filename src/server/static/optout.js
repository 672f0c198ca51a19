// The opt-out page: URL lookup, image upload search, filing a request. Plain DOM code, no framework.
const $ = (id) => document.getElementById(id);
const results = $('results');

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

function renderSamples(title, samples) {
  const box = document.createElement('div');
  box.className = 'box';
  box.appendChild(text('h2', `${title}: ${samples.length} sample(s)`));
  const grid = document.createElement('div');
  grid.className = 'grid';
  for (const s of samples) {
    const card = document.createElement('div');
    card.className = 'card result';
    card.dataset.key = s.key;
    if (s.thumbnail) {
      const img = document.createElement('img');
      img.src = s.thumbnail;
      img.alt = s.key;
      card.appendChild(img);
    }
    const link = document.createElement('a');
    link.href = s.page;
    link.textContent = `${s.dataset} ${s.key}`;
    card.appendChild(link);
    card.appendChild(
      text('div', `shard ${s.shard} · ${s.status}${s.distance !== undefined ? ` · distance ${s.distance}` : ''}`),
    );
    grid.appendChild(card);
  }
  box.appendChild(grid);
  return box;
}

async function call(url, init) {
  const res = await fetch(url, init);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function showError(err) {
  results.replaceChildren(text('p', err.message, 'err'));
}

$('url-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const url = $('url').value.trim();
  try {
    const r = await call(`/api/optout/lookup?url=${encodeURIComponent(url)}`);
    const status = text(
      'p',
      r.optedOut ? `Opted out${r.storedAs ? ` (as ${r.storedAs})` : ' (by its image)'}` : 'Not opted out',
      r.optedOut ? 'ok' : 'muted',
    );
    status.id = 'lookup-status';
    results.replaceChildren(status, renderSamples('Samples fetched from this URL', r.samples));
    $('req-urls').value = url;
  } catch (err) {
    showError(err);
  }
});

$('upload-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  try {
    const r = await call(`/api/optout/search-image?distance=${encodeURIComponent($('distance').value)}`, {
      method: 'POST',
      headers: { 'content-type': file.type || 'application/octet-stream' },
      body: file,
    });
    const status = text('p', `sha256 ${r.sha256} · ${r.optedOut ? 'opted out' : 'not opted out'}`);
    status.id = 'upload-status';
    results.replaceChildren(status, renderSamples('Identical images', r.exact), renderSamples('Near copies', r.near));
    $('req-shas').value = r.sha256;
  } catch (err) {
    showError(err);
  }
});

$('request-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const lines = (v) =>
    v
      .split('\n')
      .map((x) => x.trim())
      .filter(Boolean);
  const body = { urls: lines($('req-urls').value), sha256s: lines($('req-shas').value) };
  if ($('req-contact').value.trim()) body.contact = $('req-contact').value.trim();
  try {
    const r = await call('/api/optout/requests', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    location.href = r.page;
  } catch (err) {
    $('req-msg').replaceChildren(text('span', err.message, 'err'));
  }
});
