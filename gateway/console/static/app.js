// Copy buttons: <button data-copy="element-id">. No other script runs on these pages.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(
    () => { button.textContent = "Copied"; },
    () => { button.textContent = "Select and copy it"; },
  );
});

// Repeatable rows: <div data-rows="name" data-max="N"> holds <fieldset data-row> rows, the unused
// ones marked data-spare. Without this script every row the server drew is shown; with it, the
// spare rows wait behind an "Add a row" button (one is shown when no row is used), and rows past
// the ones drawn are copies of a spare row, renumbered, up to the list's limit.
for (const rows of document.querySelectorAll("[data-rows]")) {
  const name = rows.dataset.rows;
  const max = Number(rows.dataset.max);
  const add = document.querySelector(`button[data-add-row="${name}"]`);
  const all = () => [...rows.querySelectorAll("[data-row]")];
  const spares = all().filter((row) => row.hasAttribute("data-spare"));
  if (!add || spares.length === 0) continue;
  const blank = spares[spares.length - 1].cloneNode(true);
  const firstShown = spares.length === all().length ? spares[0] : null;
  for (const row of spares) row.hidden = row !== firstShown;
  const renumber = (row, from, to) => {
    for (const element of row.querySelectorAll("[name], [id], [for], [aria-describedby]")) {
      for (const attribute of ["name", "id", "for", "aria-describedby"]) {
        const value = element.getAttribute(attribute);
        if (value) element.setAttribute(attribute, value.replaceAll(`${name}.${from}.`, `${name}.${to}.`));
      }
    }
    const legend = row.querySelector("legend");
    legend.textContent = legend.textContent.replace(/#\d+$/, `#${to + 1}`);
  };
  const update = () => { add.hidden = all().length >= max && !all().some((row) => row.hidden); };
  add.addEventListener("click", () => {
    let row = all().find((candidate) => candidate.hidden);
    if (!row) {
      const from = Number(blank.querySelector("[name]").name.split(".")[1]);
      row = blank.cloneNode(true);
      renumber(row, from, all().length);
      rows.append(row);
    }
    row.hidden = false;
    row.querySelector("input, select").focus();
    update();
  });
  update();
}
