// Writing, replying and forwarding (placeholder until the send side lands).

/** Shows the compose screen in `root`. */
export function openCompose(root, { mode = 'new' } = {}) {
  root.replaceChildren();
  const p = document.createElement('p');
  p.className = 'notice';
  p.textContent = `Writing (${mode}) is not available in this version yet.`;
  root.append(p);
}
