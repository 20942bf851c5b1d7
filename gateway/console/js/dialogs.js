// Modal dialogs: a form whose API errors are shown next to its fields, and a confirmation.

import {h, uid} from "./dom.js";

function control(field) {
  const id = uid("in");
  const common = {id, name: field.name, required: field.required, readonly: field.readonly,
                  maxlength: field.maxlength};
  let input;
  if (field.options) {
    input = h("select", common, field.options.map((o) => h("option", {value: o,
      selected: o === field.value}, o.replace(/_/g, " "))));
  } else if (field.multiline) {
    input = h("textarea", {...common, rows: 3}, field.value ?? "");
  } else {
    input = h("input", {...common, type: field.type || "text", step: field.step,
                        value: field.value ?? "", autocomplete: "off"});
  }
  const hintId = field.hint ? `${id}-hint` : null;
  const error = h("p", {id: `${id}-error`, class: "error field-error", hidden: true});
  input.setAttribute("aria-describedby", [hintId, error.id].filter(Boolean).join(" "));
  const box = h("div", {class: "field"}, h("label", {for: id}, field.label), input,
    field.hint ? h("p", {id: hintId, class: "muted hint"}, field.hint) : null, error);
  return {box, input, error};
}

/** Resolves with send(values)'s answer once it succeeds, or null when cancelled. */
export function formDialog({title, submit, fields, note, send}) {
  const titleId = uid("dlg");
  const controls = Object.fromEntries(fields.map((f) => [f.name, control(f)]));
  const formError = h("p", {class: "error", role: "alert"});
  const cancel = h("button", {type: "button"}, "Cancel");
  const form = h("form", {novalidate: true},
    h("h2", {id: titleId}, title), note ? h("p", {class: "muted"}, note) : null,
    Object.values(controls).map((c) => c.box), formError,
    h("div", {class: "inline"}, h("button", {type: "submit"}, submit), cancel));
  const dialog = h("dialog", {"aria-labelledby": titleId}, form);
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    let result = null;
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const c of Object.values(controls)) {
        c.error.hidden = true;
        c.input.removeAttribute("aria-invalid");
      }
      formError.textContent = "";
      const values = Object.fromEntries(Object.entries(controls).map(([k, c]) => [k, c.input.value]));
      try {
        result = await send(values);
        dialog.close();
      } catch (err) {
        const violations = err.fieldViolations ? err.fieldViolations() : {};
        let placed = false;
        for (const [path, text] of Object.entries(violations)) {
          // "rule.threshold" and "threshold" both name the form's "threshold".
          const key = Object.keys(controls).find((k) => path === k || path.endsWith(`.${k}`));
          if (!key) continue;
          controls[key].error.textContent = text;
          controls[key].error.hidden = false;
          controls[key].input.setAttribute("aria-invalid", "true");
          if (!placed) controls[key].input.focus();
          placed = true;
        }
        formError.textContent = placed && Object.keys(violations).length === 1
          ? "Fix the field marked above." : err.message;
      }
    });
  });
}

/** Resolves true when the person confirms. */
export function confirmDialog(title, text, confirmLabel) {
  const titleId = uid("dlg");
  const yes = h("button", {type: "button", class: "danger"}, confirmLabel);
  const no = h("button", {type: "button"}, "Cancel");
  const dialog = h("dialog", {"aria-labelledby": titleId, role: "alertdialog"},
    h("h2", {id: titleId}, title), h("p", {}, text), h("div", {class: "inline"}, yes, no));
  document.body.append(dialog);
  dialog.showModal();
  no.focus();
  return new Promise((resolve) => {
    let answer = false;
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(answer);
    });
    yes.addEventListener("click", () => { answer = true; dialog.close(); });
    no.addEventListener("click", () => dialog.close());
  });
}
