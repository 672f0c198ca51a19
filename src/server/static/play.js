// The playground page: submit a generation, follow its steps over server-sent events, vote on the results.
const $ = (id) => document.getElementById(id);
const status = $('play-status');
const count = Number($('outputs').dataset.checkpoints);

function imageSlot(c, i) {
  const id = `img-${c}-${i}`;
  let img = document.getElementById(id);
  if (!img) {
    const wrap = document.createElement('div');
    img = document.createElement('img');
    img.id = id;
    img.alt = `checkpoint ${c} image ${i}`;
    wrap.appendChild(img);
    $(`out-${c}`).appendChild(wrap);
  }
  return img;
}

async function vote(job, c, i, v, btn) {
  const res = await fetch('/api/play/feedback', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ job, checkpoint: c, image: i, vote: v }),
  });
  btn.parentElement.querySelectorAll('button').forEach((b) => (b.disabled = true));
  btn.textContent += res.ok ? ' ✓' : ' (failed)';
}

$('play-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  for (let c = 0; c < count; c++) $(`out-${c}`).replaceChildren();
  const body = {
    prompt: $('prompt').value,
    guidance: Number($('guidance').value),
    steps: Number($('steps').value),
    seed: Number($('seed').value),
    num: Number($('num').value),
  };
  if ($('negative').value) body.negativePrompt = $('negative').value;
  const res = await fetch('/api/play/generate', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const r = await res.json();
  if (!res.ok) {
    status.textContent = r.error;
    status.className = 'err';
    return;
  }
  status.className = 'muted';
  status.textContent = r.position ? `queued (${r.position} ahead)` : 'starting';
  const es = new EventSource(r.events);
  es.addEventListener('start', () => (status.textContent = 'generating'));
  es.addEventListener('step', (m) => {
    const e = JSON.parse(m.data);
    status.textContent = `checkpoint ${e.checkpoint + 1}: step ${e.step + 1} of ${e.steps}`;
    e.images.forEach((src, i) => (imageSlot(e.checkpoint, i).src = src));
  });
  es.addEventListener('image', (m) => {
    const e = JSON.parse(m.data);
    const img = imageSlot(e.checkpoint, e.index);
    img.src = e.src;
    img.classList.add('final');
    const bar = document.createElement('div');
    for (const [v, label] of [
      ['up', 'Good'],
      ['down', 'Bad'],
    ]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.className = `vote-${v}`;
      b.addEventListener('click', () => vote(r.job, e.checkpoint, e.index, v, b));
      bar.appendChild(b);
    }
    img.parentElement.appendChild(bar);
  });
  es.addEventListener('done', () => {
    status.textContent = 'done';
    status.id = 'play-status';
    status.dataset.done = '1';
    es.close();
  });
  es.addEventListener('error', (m) => {
    if (m.data) status.textContent = `error: ${JSON.parse(m.data).message}`;
    es.close();
  });
});
