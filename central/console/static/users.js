// Users page (admins): add accounts, deactivate or reactivate them, reset a forgotten password.
"use strict";
(() => {
  const { el, t, api } = XL;
  const $ = (id) => document.getElementById(id);
  const ROLES = ["dispatcher", "operator", "worker", "admin"];
  let me = null;

  function fillForm() {
    const keep = $("u-role").value || "operator";
    $("u-role").replaceChildren(...ROLES.map((r) => el("option", { value: r, selected: r === keep ? true : null }, t(`role.${r}`))));
    $("u-station").replaceChildren(...XL.refs.stations.map((s) => el("option", { value: s.id }, `${s.name} (${s.id})`)));
    $("u-worker").replaceChildren(...XL.refs.workers.map((w) => el("option", { value: w.id }, `${w.name} (${w.id})`)));
    scope();
  }
  // Operators belong to a station and grid workers are a worker of the reference data; others to neither.
  function scope() { $("u-station-box").hidden = $("u-role").value !== "operator"; $("u-worker-box").hidden = $("u-role").value !== "worker"; }
  $("u-role").addEventListener("change", scope);

  function row(u) {
    const pw = el("input", { type: "password", placeholder: t("u.new_password"), minlength: "10", "data-reset-input": u.id, autocomplete: "new-password" });
    const reset = el("button", { type: "button", class: "ghost", "data-reset": u.id, onclick: async () => {
      try { await api(`/api/users/${u.id}/password`, { method: "POST", body: { new_password: pw.value } }); pw.value = ""; XL.showNotice(`${u.username}: ${t("u.reset_done")}`); }
      catch (err) { XL.showError(`${u.username}: ${err.message}`); }
    } }, t("u.reset"));
    const toggle = u.id === me.id ? null : el("button", { type: "button", class: "ghost", "data-toggle": u.id, onclick: async () => {
      try { await api(`/api/users/${u.id}/${u.active ? "deactivate" : "activate"}`, { method: "POST" }); load(); }
      catch (err) { XL.showError(`${u.username}: ${err.message}`); }
    } }, t(u.active ? "u.deactivate" : "u.activate"));
    return el("tr", { "data-user": u.username, class: u.active ? "" : "inactive" },
      el("td", {}, u.id), el("td", {}, u.username), el("td", {}, u.display_name), el("td", {}, t(`role.${u.role}`)),
      el("td", {}, u.station_id || (u.worker_id ? XL.workerName(u.worker_id) : "—")), el("td", {}, t(u.active ? "u.on" : "u.off")),
      el("td", { class: "row-actions" }, toggle, pw, reset));
  }

  async function load() {
    try { $("users-body").replaceChildren(...(await api("/api/users")).map(row)); } catch (err) { XL.showError(err.message); }
  }

  $("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const role = $("u-role").value;
    const body = { username: $("u-username").value, display_name: $("u-name").value, password: $("u-password").value, role };
    if (role === "operator") body.station_id = $("u-station").value;
    if (role === "worker") body.worker_id = $("u-worker").value;
    try {
      await api("/api/users", { method: "POST", body });
      $("user-form").reset(); fillForm();
      XL.showNotice(`${body.username}: ${t("u.created")}`);
      load();
    } catch (err) { XL.showError(`${body.username}: ${err.message}`); }
  });

  XL.showUsers = (who) => { me = who; fillForm(); load(); };
})();
