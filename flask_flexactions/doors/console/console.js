// The Flex Actions debug console: lists the actions, builds a form per action (filled with the
// declared defaults, and those computed from the record), previews and runs it, follows
// background jobs, lists and decides approval requests, and shows the answer first with the
// exchange below it. Plain JavaScript, no build step, nothing from another host.
(function () {
  "use strict";

  const STORAGE_KEY = "flexactions.authorization";
  const JOBS_KEY = "flexactions.jobs";
  const MASK = "••••••••";
  // A bulk run over this many records or more (or over "all rows except these") asks first.
  const CONFIRM_FROM = 10;
  // How often a job that is not finished is asked for its state (less often after a minute,
  // e.g. while no worker takes it), and how many jobs the list keeps.
  const POLL_MS = 1000;
  const SLOW_POLL_MS = 5000;
  const SLOW_AFTER_MS = 60000;
  const MAX_JOBS = 20;
  // How many requests of each approvals list are asked for (the server allows 200).
  const APPROVALS_LIMIT = 50;
  // The message of each decision a button sends.
  const DECISIONS = {
    approve: "approve_action",
    reject: "reject_action",
    withdraw: "withdraw_approval",
  };
  const FINAL_STATES = ["succeeded", "failed", "cancelled"];
  const messagesUrl = new URL("../messages/", window.location.href).href;
  const $ = (id) => document.getElementById(id);

  let fields = [];
  let downloadUrls = [];
  // The action whose form is shown, for controls that ask the server (computed options).
  let current = { action: null, model: null, kind: null };

  // Builds an element; `props` are DOM properties, except `attrs` and `dataset` objects.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "attrs") {
        for (const [name, attr] of Object.entries(value)) node.setAttribute(name, attr);
      } else if (key === "dataset") {
        Object.assign(node.dataset, value);
      } else {
        node[key] = value;
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function plural(count, noun) {
    return count + " " + noun + (count === 1 ? "" : "s");
  }

  // "account_from" and "accountFrom" read "Account from".
  function humanize(name) {
    const words = String(name)
      .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
      .replace(/[_\-.\s]+/g, " ")
      .trim()
      .toLowerCase();
    return words ? words[0].toUpperCase() + words.slice(1) : String(name);
  }

  function sentence(text) {
    return /[.!?]$/.test(text) ? text : text + ".";
  }

  // Tells screen readers what happened (the page's polite live region).
  function announce(text) {
    const region = $("announcer");
    region.textContent = "";
    window.setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  // --- the credential, kept in session storage only

  function authorization() {
    return window.sessionStorage.getItem(STORAGE_KEY) || "";
  }

  function normalizeCredential(text) {
    const value = text.trim();
    return /\s/.test(value) ? value : "Token " + value;
  }

  // Keeps each entry's scheme ("Token", "Bearer", ...) and hides its value.
  function maskAuthorization(value) {
    return value
      .split(",")
      .map((entry) => {
        const text = entry.trim();
        const space = text.indexOf(" ");
        return space < 0 ? MASK : text.slice(0, space) + " " + MASK;
      })
      .join(", ");
  }

  async function post(name, params) {
    const message = params === undefined ? { name } : { name, params };
    const body = JSON.stringify(message);
    const headers = { "Content-Type": "application/json", Authorization: authorization() };
    const response = await fetch(messagesUrl, {
      method: "POST",
      headers,
      body,
      credentials: "omit",
      cache: "no-store",
    });
    return { response, headers, body };
  }

  // A message whose answer is JSON: { response, data } (data is null when it is not JSON).
  // A request that fails (the server is away) answers status 0 and the error's text.
  async function ask(name, params) {
    try {
      const { response } = await post(name, params);
      const data = await response.json().catch(() => null);
      return { response, data };
    } catch (error) {
      const data = { result: false, errors: { non_field_errors: ["The request failed: " + error.message] } };
      return { response: { ok: false, status: 0 }, data };
    }
  }

  function errorText(data, fallback) {
    const errors = data && data.errors;
    if (errors && typeof errors === "object") {
      return Object.values(errors).flat().join(" ");
    }
    return fallback;
  }

  function showLogin(message) {
    $("workspace").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("credential").focus();
  }

  async function connect() {
    let response;
    try {
      ({ response } = await post("get_action_list"));
    } catch (error) {
      showLogin("Could not reach " + messagesUrl + ": " + error.message);
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok || !Array.isArray(data)) {
      if (response.status === 401 || response.status === 403) {
        window.sessionStorage.removeItem(STORAGE_KEY);
      }
      showLogin(response.status + ": " + errorText(data, "the action list could not be read."));
      return;
    }
    $("login").hidden = true;
    $("workspace").hidden = false;
    $("forget").hidden = false;
    closeApproval();
    renderActions(data);
    renderJobList();
    // Approvals: the panel shows when an action listed needs approval, or when the server
    // lists a request for this caller (an approver may run none of those actions).
    approvals.enabled = data.some((action) => action.approval);
    approvals.shown = false;
    $("approvals").hidden = true;
    $("to-decide").replaceChildren();
    $("mine").replaceChildren();
    loadApprovals();
    for (const job of storedJobs()) {
      if (!FINAL_STATES.includes(job.state) && job.state !== "unknown") watch(job.id);
    }
  }

  // --- the list of actions, grouped by collection

  function kindOf(action) {
    const model = action.model_action;
    if (!model) return "common";
    if (model.bulk) return "bulk";
    return model.for_instance ? "record" : "collection";
  }

  function renderActions(actions) {
    const groups = new Map();
    const common = [];
    for (const action of actions) {
      if (!action.model_action) {
        common.push({ action, model: null });
        continue;
      }
      const models = [].concat(action.model_action.model);
      for (const model of models) {
        if (!groups.has(model)) groups.set(model, []);
        groups.get(model).push({ action, model });
      }
    }
    const nav = $("actions");
    nav.replaceChildren();
    const sections = [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    if (common.length) sections.push([null, common]);
    sections.forEach(([model, entries], index) => {
      const list = el("ul", { attrs: { "aria-labelledby": "group-" + index } });
      for (const entry of entries) {
        const kind = kindOf(entry.action);
        const button = el(
          "button",
          {
            type: "button",
            className: "action",
            title: entry.action.description || entry.action.name,
            dataset: { action: entry.action.name, model: model || "" },
          },
          el("span", {}, entry.action.label || humanize(entry.action.name)),
          el("span", { className: "kind kind-" + kind }, kind),
        );
        button.addEventListener("click", () => {
          for (const other of nav.querySelectorAll("button[aria-current]")) {
            other.removeAttribute("aria-current");
          }
          button.setAttribute("aria-current", "true");
          closeApproval();
          renderForm(entry.action, entry.model);
          $("action-title").focus();
        });
        list.append(el("li", {}, button));
      }
      const title = model === null ? "Common actions" : model;
      nav.append(
        el("section", { className: "group", dataset: { group: title } },
          el("h2", { id: "group-" + index }, title), list),
      );
    });
    if (!actions.length) nav.append(el("p", { className: "hint" }, "No actions are registered."));
  }

  // --- one form per action

  function fieldBox(name, labelText, required, input, node, notes) {
    const label = el("label", { htmlFor: input.id }, labelText);
    // Screen readers say "required" from the control's own attribute; the star is for the eye.
    if (required) {
      label.append(el("span", { className: "required-mark", title: "required", attrs: { "aria-hidden": "true" } }, "*"));
    }
    const errors = el("ul", { className: "errors field-errors", id: "errors-" + input.id });
    const box = el("div", { className: "field", dataset: { field: name } }, label);
    box.append(node);
    const described = [];
    notes.filter(Boolean).forEach((note, index) => {
      const id = "hint-" + input.id + "-" + index;
      box.append(el("p", { className: "hint", id }, note));
      described.push(id);
    });
    described.push(errors.id);
    input.setAttribute("aria-describedby", described.join(" "));
    box.append(errors);
    return { box, errors };
  }

  // A wire id: a JSON number for integers JavaScript holds exactly, the text otherwise.
  function parseId(text) {
    const value = text.trim();
    if (/^-?[0-9]+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
    return value;
  }

  function idList(text) {
    return text.split(",").map((part) => part.trim()).filter(Boolean).map(parseId);
  }

  function textControl(id, param, multiline, code) {
    const input = multiline
      ? el("textarea", { id, className: code ? "code" : "", spellcheck: !code })
      : el("input", { id, type: "text" });
    input.required = param.required;
    return {
      input,
      read: () => (input.value === "" ? undefined : input.value),
      fill: (value) => {
        input.value = value === null ? "" : String(value);
      },
    };
  }

  function numberControl(id, param, kind) {
    const input = el("input", { id, type: kind === "DecimalField" ? "text" : "number" });
    input.required = param.required;
    if (kind === "IntegerField") input.step = "1";
    if (kind === "FloatField") input.step = "any";
    if (kind === "DecimalField") {
      input.inputMode = "decimal";
      input.pattern = "[+\\-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+\\-]?[0-9]+)?";
      input.placeholder = "12.50";
    }
    return {
      input,
      read: () => {
        if (input.validity.badInput) throw new Error("Enter a number.");
        const text = input.value.trim();
        if (text === "") return undefined;
        if (kind === "DecimalField") return text; // as text, so every digit is kept
        const number = Number(text);
        if (kind === "IntegerField" && !Number.isSafeInteger(number) && /^[+-]?[0-9]+$/.test(text)) {
          return text;
        }
        return number;
      },
      fill: (value) => {
        input.value = value === null ? "" : String(value);
      },
    };
  }

  function selectControl(id, param) {
    let options = (param.params && param.params.options) || [];
    let wanted = null; // a default to select once the options are known
    const select = el("select", { id });
    const choose = () => {
      if (wanted === null) return;
      const index = options.findIndex((option) => String(option.value) === String(wanted));
      if (index >= 0) select.value = String(index);
    };
    const fill = () => {
      const chosen = select.value === "" ? null : options[Number(select.value)];
      select.replaceChildren(el("option", { value: "" }, "—"));
      options.forEach((option, index) => {
        select.append(el("option", { value: String(index) }, option.name ?? String(option.value)));
      });
      if (chosen) wanted = chosen.value;
      choose();
    };
    fill();
    if (param.params && param.params.dynamic) {
      // Computed options depend on the selected record(s): ask the server when the list opens.
      const context = current;
      select.addEventListener("focus", async () => {
        const request = { action: context.action.name, field: param.name };
        if (context.model) request.model = context.model;
        const one = $("target-id");
        const many = $("target-ids");
        if (one && one.value.trim()) request.id = parseId(one.value);
        if (many && many.value.trim()) request.ids = idList(many.value);
        const { response, data } = await ask("get_field_options", request);
        if (response.ok && Array.isArray(data)) {
          options = data;
          fill();
        }
      });
    }
    select.required = param.required;
    return {
      input: select,
      read: () => (select.value === "" ? undefined : options[Number(select.value)].value),
      fill: (value) => {
        wanted = value;
        select.value = "";
        choose();
      },
    };
  }

  function jsonControl(id, param) {
    const input = el("textarea", { id, className: "code", spellcheck: false, placeholder: "{}" });
    input.required = param.required;
    const status = el("p", { className: "hint json-status", attrs: { "aria-live": "polite" } });
    const check = () => {
      if (input.value.trim() === "") {
        input.setCustomValidity("");
        status.textContent = "";
        return;
      }
      try {
        JSON.parse(input.value);
        input.setCustomValidity("");
        status.textContent = "Valid JSON";
        status.className = "hint json-status ok";
      } catch (error) {
        input.setCustomValidity("Not valid JSON: " + error.message);
        status.textContent = "Not valid JSON: " + error.message;
        status.className = "hint json-status error";
      }
    };
    input.addEventListener("input", check);
    return {
      input,
      wrapper: el("div", {}, input, status),
      read: () => {
        if (input.value.trim() === "") return undefined;
        try {
          return JSON.parse(input.value);
        } catch (error) {
          throw new Error("Not valid JSON: " + error.message);
        }
      },
      fill: (value) => {
        input.value = value === null ? "" : JSON.stringify(value, null, 2);
        check();
      },
    };
  }

  // The value a date or time input takes for a default given as ISO text (or Unix seconds).
  function localDateTime(value, kind) {
    if (kind === "TimestampField" && typeof value === "number") {
      const date = new Date(value * 1000);
      const pad = (number) => String(number).padStart(2, "0");
      return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
        "T" + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
    }
    const text = String(value);
    const patterns = {
      DateField: /^\d{4}-\d\d-\d\d/,
      TimeField: /^\d\d:\d\d(:\d\d)?/,
      DateTimeField: /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d)?/,
      TimestampField: /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d)?/,
    };
    const match = patterns[kind].exec(text);
    return match ? match[0].replace(" ", "T") : "";
  }

  function dateControl(id, param, kind) {
    const types = {
      DateField: "date",
      TimeField: "time",
      DateTimeField: "datetime-local",
      TimestampField: "datetime-local",
    };
    const input = el("input", { id, type: types[kind] });
    if (kind !== "DateField") input.step = "1";
    input.required = param.required;
    return {
      input,
      read: () => {
        if (input.value === "") return undefined;
        // The browser's local time, sent as Unix seconds.
        if (kind === "TimestampField") return Math.floor(new Date(input.value).getTime() / 1000);
        return input.value;
      },
      fill: (value) => {
        input.value = value === null ? "" : localDateTime(value, kind);
      },
    };
  }

  function checkboxControl(id) {
    const input = el("input", { id, type: "checkbox" });
    return {
      input,
      read: () => input.checked,
      fill: (value) => {
        input.checked = value === true;
      },
    };
  }

  // The ForeignKey picker: the id to send, and a search over the related rows.
  function foreignKeyControl(id, param) {
    const related = param.params && param.params.related_model && param.params.related_model.model;
    const input = el("input", { id, type: "text", placeholder: "id" });
    input.required = param.required;
    const chosen = el("span", { className: "hint picker-chosen" });
    const search = el("input", {
      type: "search",
      className: "picker-search",
      placeholder: "Search " + related + "…",
      attrs: { "aria-label": "Search " + related + " for " + id.replace(/^param-/, "") },
    });
    const results = el("ul", { className: "picker-results", attrs: { "aria-label": "Matching " + related } });
    const more = el("button", { type: "button", className: "picker-more secondary small", hidden: true }, "More…");
    let page = 1;
    let timer = null;
    let picked = null;

    let latest = 0;

    async function lookup(append) {
      const mine = ++latest;
      const { response, data } = await ask("get_related_options", {
        model: related,
        search: search.value,
        page,
        limit: 10,
      });
      if (mine !== latest) return; // a newer search, or a pick, came meanwhile
      if (!append) results.replaceChildren();
      if (!response.ok || !data) {
        results.append(el("li", { className: "error" }, errorText(data, "The search failed.")));
        more.hidden = true;
        return;
      }
      for (const row of data.results) {
        const option = el("button", { type: "button", dataset: { id: String(row.id) } }, row.label + " (#" + row.id + ")");
        option.addEventListener("click", () => {
          window.clearTimeout(timer);
          latest += 1;
          picked = row;
          input.value = String(row.id);
          chosen.textContent = row.label;
          results.replaceChildren();
          more.hidden = true;
          input.dispatchEvent(new Event("change", { bubbles: true }));
          input.focus();
        });
        results.append(el("li", {}, option));
      }
      if (!data.results.length && !append) results.append(el("li", { className: "hint" }, "No match."));
      more.hidden = !data.has_more;
    }

    search.addEventListener("input", () => {
      window.clearTimeout(timer);
      page = 1;
      timer = window.setTimeout(() => lookup(false), 200);
    });
    search.addEventListener("focus", () => {
      if (!results.childElementCount) lookup(false);
    });
    // Enter in the search picks the first match instead of running the action.
    search.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      const first = results.querySelector("button");
      if (first) first.click();
    });
    more.addEventListener("click", () => {
      page += 1;
      lookup(true);
    });
    input.addEventListener("input", () => {
      picked = null;
      chosen.textContent = "";
    });
    return {
      input,
      wrapper: el("div", { className: "picker" }, el("div", {}, input, " ", chosen), search, results, more),
      read: () => {
        if (input.value.trim() === "") return undefined;
        if (picked !== null && String(picked.id) === input.value) return picked.id;
        return parseId(input.value);
      },
      fill: (value) => {
        picked = null;
        chosen.textContent = "";
        input.value = value === null ? "" : String(value);
      },
    };
  }

  function controlFor(param, id) {
    switch (param.field) {
      case "BooleanField":
        return checkboxControl(id);
      case "SelectField":
        return selectControl(id, param);
      case "ForeignKey":
        return foreignKeyControl(id, param);
      case "DateField":
      case "TimeField":
      case "DateTimeField":
      case "TimestampField":
        return dateControl(id, param, param.field);
      case "IntegerField":
      case "FloatField":
      case "DecimalField":
        return numberControl(id, param, param.field);
      case "JSONField":
        return jsonControl(id, param);
      case "TextField":
      case "TranslatableField":
        return textControl(id, param, true, false);
      case "SqlField":
      case "CodeField":
        return textControl(id, param, true, true);
      default:
        return textControl(id, param, false, false);
    }
  }

  // A declared JSON default (not one computed from the record, which get_action_params gives).
  function hasListedDefault(param) {
    return "default" in param && !param.default_from_record && param.default !== null;
  }

  function renderForm(action, model) {
    const kind = kindOf(action);
    $("placeholder").hidden = true;
    $("action-form").hidden = false;
    clearOutcome();
    $("action-title").textContent = action.label || humanize(action.name);
    const where = model === null ? "a common action" : "a " + kind + " action on " + model;
    const traits = [];
    if (action.preview) traits.push("has a preview");
    if (action.background) traits.push("runs in the background");
    if (action.approval) traits.push("needs approval");
    $("action-meta").textContent = [action.name + " · " + where, ...traits, action.description]
      .filter(Boolean)
      .join(" · ");
    fields = [];
    current = { action, model, kind };
    const target = $("target");
    target.replaceChildren();
    if (kind === "record") {
      const input = el("input", { id: "target-id", type: "text", required: true, placeholder: "15", autocomplete: "off" });
      target.append(fieldBox("id", "Record id", true, input, input, ["The primary key of the record."]).box);
      if ((action.params || []).some((param) => param.default_from_record)) {
        input.addEventListener("input", () => askRecordDefaults(action, model, 400));
        input.addEventListener("change", () => askRecordDefaults(action, model, 0));
      }
    } else if (kind === "bulk") {
      const input = el("input", { id: "target-ids", type: "text", required: true, placeholder: "1, 2, 3", autocomplete: "off" });
      const inverse = el("input", { id: "target-inverse", type: "checkbox" });
      inverse.addEventListener("change", () => {
        input.required = !inverse.checked;
      });
      target.append(
        fieldBox("ids", "Record ids", true, input, input, ["Primary keys, separated by commas."]).box,
        el("label", { className: "inline check" }, inverse, "All rows except these ids (inverseIds)"),
      );
    }
    $("defaults-status").textContent = "";
    const box = $("params");
    box.replaceChildren();
    for (const param of action.params || []) {
      const control = controlFor(param, "param-" + param.name);
      const fromRecord = param.default_from_record
        ? "Default: from the record, once its id is given."
        : null;
      const { box: fieldElement, errors } = fieldBox(
        param.name,
        param.label || param.verbose_name || humanize(param.name),
        param.required,
        control.input,
        control.wrapper || control.input,
        [param.description, fromRecord],
      );
      const field = { name: param.name, param, control, errors, dirty: false };
      // What the user types wins over a default filled in later.
      fieldElement.addEventListener("input", () => { field.dirty = true; });
      fieldElement.addEventListener("change", () => { field.dirty = true; });
      if (hasListedDefault(param)) control.fill(param.default);
      box.append(fieldElement);
      fields.push(field);
    }
    if (action.approval) box.append(reasonBox(action.approval));
    $("non-field-errors").replaceChildren();
    $("preview").hidden = !action.preview;
    const form = $("action-form");
    form.classList.remove("submitted");
    form.dataset.action = action.name;
    form.dataset.model = model || "";
    form.dataset.kind = kind;
  }

  // The requester's reason, for an action that needs approval (execute_action's "reason").
  function reasonBox(approval) {
    const input = el("textarea", { id: "approval-reason", maxLength: 2000 });
    input.required = approval.reason === true;
    const approvers = approval.approvers > 1 ? plural(approval.approvers, "other person") : "another person";
    const when = approval.conditional ? " (only in some cases)" : "";
    const note = "This action needs the approval of " + approvers + when +
      ": running it files a request, and nothing runs until it is approved.";
    return fieldBox("approval-reason", "Reason for the approvers", input.required, input, input, [note]).box;
  }

  // --- defaults computed from the record: get_action_params once its id is given

  let defaultsTimer = null;
  let defaultsAsked = 0;

  function askRecordDefaults(action, model, delay) {
    window.clearTimeout(defaultsTimer);
    defaultsTimer = window.setTimeout(() => fillRecordDefaults(action, model), delay);
  }

  async function fillRecordDefaults(action, model) {
    const mine = ++defaultsAsked;
    const text = $("target-id") ? $("target-id").value.trim() : "";
    const status = $("defaults-status");
    const errors = $("errors-target-id");
    if (!text) {
      status.textContent = "";
      return;
    }
    const request = { name: action.name, id: parseId(text) };
    if (model !== null) request.model = model;
    const answer = await ask("get_action_params", request);
    if (mine !== defaultsAsked || current.action !== action) return;
    errors.replaceChildren();
    $("target-id").removeAttribute("aria-invalid");
    const { response, data } = answer;
    if (!response.ok || !Array.isArray(data)) {
      status.textContent = "";
      errors.append(el("li", {}, errorText(data, "The record's defaults could not be read.")));
      $("target-id").setAttribute("aria-invalid", "true");
      return;
    }
    const filled = [];
    for (const param of data) {
      const field = fields.find((candidate) => candidate.name === param.name);
      if (!field || !param.default_from_record || field.dirty) continue;
      field.control.fill(param.default);
      filled.push(field.param.label || humanize(field.name));
    }
    status.textContent = filled.length
      ? "Filled from record " + text + ": " + filled.join(", ") + "."
      : "";
  }

  // --- checking and sending

  function clearErrors() {
    $("non-field-errors").replaceChildren();
    for (const list of document.querySelectorAll("#action-form .field-errors")) list.replaceChildren();
    for (const node of document.querySelectorAll("#action-form [aria-invalid]")) {
      node.removeAttribute("aria-invalid");
    }
  }

  function labelOf(name) {
    const field = fields.find((candidate) => candidate.name === name);
    if (!field && name === "reason" && $("approval-reason")) return "Reason";
    return field ? field.param.label || field.param.verbose_name || humanize(name) : name;
  }

  // Field errors under their fields, the others above the Run button; returns them as text.
  function showErrors(errors) {
    const lines = [];
    for (const [key, messages] of Object.entries(errors)) {
      const list = document.getElementById("errors-param-" + key) ||
        (key === "reason" ? document.getElementById("errors-approval-reason") : null);
      const target = list || $("non-field-errors");
      for (const message of [].concat(messages)) {
        const text = list || key === "non_field_errors" ? String(message) : key + ": " + message;
        target.append(el("li", {}, text));
        lines.push(key === "non_field_errors" ? String(message) : labelOf(key) + ": " + message);
      }
      if (list) $(list.id.slice("errors-".length)).setAttribute("aria-invalid", "true");
    }
    return lines;
  }

  // Hides the answer and the exchange of an earlier run.
  function clearOutcome() {
    $("result").hidden = true;
    $("exchange").hidden = true;
    $("answer").replaceChildren();
    for (const id of ["request-line", "request-headers", "request-body", "response-status",
      "response-headers", "response-body"]) {
      $(id).textContent = "";
    }
  }

  // The execute_action params of the form, or null when the browser refuses the form.
  function readForm() {
    const form = $("action-form");
    form.classList.add("submitted");
    const { action, model, kind } = current;
    if ($("browser-validation").checked && !form.reportValidity()) {
      const invalid = form.querySelectorAll(":invalid");
      for (const node of invalid) node.setAttribute("aria-invalid", "true");
      announce("Not sent: " + plural(invalid.length, "field") + " to correct.");
      return null;
    }
    const params = { name: action.name };
    if (model !== null) params.model = model;
    if (kind === "record") params.id = parseId($("target-id").value);
    if (kind === "bulk") {
      params.ids = idList($("target-ids").value);
      if ($("target-inverse").checked) params.inverseIds = true;
    }
    const values = {};
    const local = {};
    for (const field of fields) {
      try {
        const value = field.control.read();
        if (value !== undefined) values[field.name] = value;
      } catch (error) {
        local[field.name] = [error.message];
      }
    }
    if (Object.keys(local).length) {
      const lines = showErrors(local);
      announce("Not sent: " + lines.join(" "));
      return null;
    }
    params.params = values;
    const reason = $("approval-reason");
    if (reason && reason.value.trim()) params.reason = reason.value;
    return params;
  }

  function setBusy(busy) {
    $("run").disabled = busy;
    $("preview").disabled = busy;
    $("result").setAttribute("aria-busy", busy ? "true" : "false");
  }

  // Sends one execute_action and shows the exchange and its answer; returns the JSON answer.
  async function send(params) {
    setBusy(true);
    try {
      const { response, headers, body } = await post("execute_action", params);
      showRequest(headers, body);
      return await showResponse(response);
    } catch (error) {
      const message = "The request failed: " + error.message;
      $("non-field-errors").append(el("li", {}, message));
      announce(message);
      return null;
    } finally {
      setBusy(false);
    }
  }

  function needsConfirmation(params) {
    if (current.kind !== "bulk") return false;
    return params.inverseIds === true || new Set(params.ids.map(String)).size >= CONFIRM_FROM;
  }

  async function submit(mode) {
    clearErrors();
    const params = readForm();
    if (params === null) {
      clearOutcome(); // what is on screen is no longer the answer to this form
      return;
    }
    if (mode === "preview") {
      await send({ ...params, dry_run: true });
      return;
    }
    if (needsConfirmation(params)) {
      const dry = await send({ ...params, dry_run: true });
      if (!dry || dry.result !== true) return; // refused: its errors are shown
      const ok = await confirmRun(params, dry);
      if (!ok) {
        announce("Not run.");
        return;
      }
    }
    await send(params);
  }

  // Asks before a bulk run over many rows, with the count (and the preview's message).
  function confirmRun(params, dry) {
    const { action, model } = current;
    const count = typeof dry.count === "number" ? dry.count : params.ids.length;
    const name = action.label || humanize(action.name);
    $("confirm-title").textContent = "Run " + name + " on " + plural(count, "record") + "?";
    $("confirm-text").textContent = params.inverseIds
      ? "All rows of " + model + (params.ids.length
        ? " except " + plural(params.ids.length, "id") + " (" + params.ids.join(", ") + ")"
        : ", with no exception") + ": " + plural(count, "record") + "."
      : plural(count, "record") + " selected.";
    $("confirm-preview").textContent = action.preview && dry.message ? dry.message : "";
    $("confirm-run").textContent = "Run on " + plural(count, "record");
    const dialog = $("confirm");
    return new Promise((resolve) => {
      const finish = (answer) => {
        $("confirm-run").onclick = null;
        $("confirm-cancel").onclick = null;
        dialog.onclose = null;
        if (dialog.open) dialog.close();
        resolve(answer);
        $("run").focus();
      };
      $("confirm-run").onclick = () => finish(true);
      $("confirm-cancel").onclick = () => finish(false);
      dialog.onclose = () => finish(false); // Escape
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  // --- both sides of the exchange

  function headerLines(entries) {
    return entries.map(([name, value]) => name + ": " + value).join("\n");
  }

  function showRequest(headers, body) {
    $("exchange").hidden = false;
    $("request-line").textContent = "POST " + messagesUrl;
    const shown = Object.entries(headers).map(([name, value]) =>
      name.toLowerCase() === "authorization" ? [name, maskAuthorization(value)] : [name, value],
    );
    $("request-headers").textContent = headerLines(shown);
    $("request-body").textContent = JSON.stringify(JSON.parse(body), null, 2);
  }

  function fileName(disposition) {
    const extended = /filename\*\s*=\s*[\w-]+'[^']*'([^;]+)/i.exec(disposition);
    if (extended) {
      try {
        return decodeURIComponent(extended[1].trim());
      } catch (error) {
        // fall back to the plain name
      }
    }
    const plain = /filename\s*=\s*(?:"([^"]*)"|([^;]+))/i.exec(disposition);
    return plain ? (plain[1] ?? plain[2]).trim() : "download";
  }

  function fileLink(blob, name, id) {
    const url = URL.createObjectURL(blob);
    downloadUrls.push(url);
    return el("p", {}, "A file answer: ",
      el("a", { id, href: url, download: name }, "Download " + name),
      " (" + blob.size + " bytes, " + (blob.type || "no type") + ")");
  }

  function forgetDownloads() {
    for (const url of downloadUrls) URL.revokeObjectURL(url);
    downloadUrls = [];
  }

  function showResult(title) {
    const result = $("result");
    $("result-title").textContent = title;
    result.hidden = false;
    // On a narrow screen the answer is below the form: bring it up when it starts low.
    const box = result.getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight / 2) {
      result.scrollIntoView({ block: "start", behavior: "instant" });
    }
  }

  async function showResponse(response) {
    $("response-status").textContent = response.status + " " + response.statusText;
    $("response-headers").textContent = headerLines([...response.headers.entries()]);
    const answer = $("answer");
    answer.replaceChildren();
    forgetDownloads();
    const disposition = response.headers.get("Content-Disposition") || "";
    if (/^\s*attachment/i.test(disposition)) {
      const blob = await response.blob();
      const name = fileName(disposition);
      answer.append(statusLine(true, response), fileLink(blob, name, "download"));
      $("response-body").textContent = blob.type.startsWith("text/") ? await blob.text() : "";
      showResult("Answer");
      announce("Answered with a file: " + name + ".");
      return null;
    }
    const text = await response.text();
    let data = null;
    try {
      data = JSON.parse(text);
    } catch (error) {
      data = null;
    }
    $("response-body").textContent = data === null ? text : JSON.stringify(data, null, 2);
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      answer.append(statusLine(null, response), el("p", { className: "message" }, text.slice(0, 500)));
      showResult("Answer");
      announce("The answer is not a JSON object: " + response.status + ".");
      return null;
    }
    const lines = data.errors && typeof data.errors === "object" ? showErrors(data.errors) : [];
    const job = data.job && typeof data.job === "object" ? data.job : null;
    if (job && FINAL_STATES.includes(job.state)) {
      // It ran inline: the job tells everything, its answer included.
      answer.append(statusLine(data.result, response));
    } else {
      renderAnswer(data, answer, response);
    }
    if (job) {
      remember(job);
      answer.append(jobCard(job));
      if (!FINAL_STATES.includes(job.state)) watch(job.id);
    }
    const filed = !data.dry_run && data.approval && typeof data.approval === "object" &&
      typeof data.approval.id === "string" ? data.approval : null;
    if (filed) {
      answer.append(filedNotice(filed));
      loadApprovals();
    }
    showResult(data.dry_run ? "Preview" : filed ? "Approval requested" : "Answer");
    const what = data.dry_run ? "Preview" : current.action ? current.action.label || current.action.name : "Answer";
    if (data.result === false) {
      announce(what + " refused. " + (lines.join(" ") || errorText(data, "")));
    } else if (filed) {
      announce(what + ": an approval request was filed; nothing ran yet.");
    } else {
      announce(sentence(what + ": " + (data.message || (job ? "job " + job.state : "done"))));
    }
    return data;
  }

  function statusLine(result, response) {
    const line = el("p", { className: "status-line" });
    if (result === true || result === false) {
      line.append(el("span", { className: result ? "result-true" : "result-false" }, "result: " + result));
    }
    if (response && !response.ok) line.append(el("span", { className: "result-false" }, "HTTP " + response.status));
    return line;
  }

  // An answer object (of a run, a dry run or a job) into `container`.
  function renderAnswer(data, container, response) {
    container.append(statusLine("result" in data ? data.result : null, response));
    if (data.dry_run) {
      const count = typeof data.count === "number" ? " · " + plural(data.count, "record") + " selected" : "";
      container.append(el("p", { className: "hint" }, "Dry run: nothing was changed" + count + "."));
    }
    if (data.message) {
      container.append(el("p", { className: "message" + (data.dry_run ? " preview-message" : "") }, data.message));
    }
    if (data.html) container.append(htmlFrame(String(data.html)));
    if (Array.isArray(data.records)) {
      const list = el("ul", { className: "records", attrs: { "aria-label": "Outcome per record" } });
      for (const record of data.records) {
        const failed = record.result === false;
        const text = record.message || errorText(record, failed ? "failed" : "done");
        list.append(el("li", { className: failed ? "failed" : "" },
          "#" + record.id + " " + (failed ? "failed" : "ok") + ": " + text));
      }
      container.append(list);
    }
    if (data.errors && typeof data.errors === "object") {
      const list = el("ul", { className: "errors answer-errors" });
      for (const [key, messages] of Object.entries(data.errors)) {
        for (const message of [].concat(messages)) {
          list.append(el("li", {}, key === "non_field_errors" ? String(message) : labelOf(key) + ": " + message));
        }
      }
      container.append(list);
    }
  }

  // --- HTML answers: a sandboxed frame with a stylesheet of its own

  let frameStyle = null;

  // frame.css and its hash, which the page's policy admits as the frame's one inline style.
  function loadFrameStyle() {
    if (frameStyle === null) {
      frameStyle = fetch("frame.css", { credentials: "omit", cache: "no-store" })
        .then(async (response) => {
          const digest = /sha-256=:([A-Za-z0-9+/=]+):/.exec(response.headers.get("Content-Digest") || "");
          return response.ok && digest ? { css: await response.text(), hash: digest[1] } : null;
        })
        .catch(() => null);
    }
    return frameStyle;
  }

  function htmlFrame(html) {
    // No scripts, no same-origin access: the answer's markup is only displayed.
    const frame = el("iframe", { className: "html-answer", title: "HTML answer", attrs: { sandbox: "" } });
    loadFrameStyle().then((style) => {
      // The frame's own policy: nothing to load (images only as data: URLs), no style but ours.
      const policy = "default-src 'none'; img-src data:; style-src " +
        (style ? "'sha256-" + style.hash + "'" : "'none'");
      frame.srcdoc = '<!doctype html><html><head><meta charset="utf-8">' +
        '<meta http-equiv="Content-Security-Policy" content="' + policy + '">' +
        (style ? "<style>" + style.css + "</style>" : "") + "</head><body>" + html + "</body></html>";
    });
    return frame;
  }

  // --- background jobs: state, progress, answer and cancel; the tab's recent jobs

  function storedJobs() {
    try {
      const jobs = JSON.parse(window.sessionStorage.getItem(JOBS_KEY) || "[]");
      return Array.isArray(jobs) ? jobs : [];
    } catch (error) {
      return [];
    }
  }

  function storeJobs(jobs) {
    window.sessionStorage.setItem(JOBS_KEY, JSON.stringify(jobs.slice(0, MAX_JOBS)));
  }

  // Adds a job this tab started to the list, or updates its state there.
  function remember(job) {
    const jobs = storedJobs();
    const known = jobs.find((entry) => entry.id === job.id);
    if (known) {
      known.state = job.state;
    } else {
      const action = current.action;
      jobs.unshift({
        id: job.id,
        action: action ? action.name : job.action,
        label: action ? action.label || humanize(action.name) : humanize(job.action || "job"),
        model: current.model,
        state: job.state,
        started: Date.now(),
      });
    }
    storeJobs(jobs);
    renderJobList();
  }

  function stateBadge(state) {
    return el("span", { className: "state state-" + state }, state);
  }

  function renderJobList() {
    const jobs = storedJobs();
    const list = $("job-list");
    list.replaceChildren();
    $("jobs").hidden = jobs.length === 0;
    for (const job of jobs) {
      const when = new Date(job.started).toLocaleTimeString();
      const open = el("button", { type: "button", className: "job-open", dataset: { job: job.id } },
        job.label + (job.model ? " on " + job.model : ""));
      open.addEventListener("click", () => showJob(job.id));
      list.append(el("li", { dataset: { job: job.id } }, open, stateBadge(job.state),
        el("span", { className: "when" }, when)));
    }
  }

  // A job of the list, shown in the answer's place with its latest state.
  async function showJob(id) {
    const entry = storedJobs().find((job) => job.id === id);
    $("answer").replaceChildren();
    $("exchange").hidden = true;
    const { response, data } = await ask("get_action_status", { job: id });
    if (!response.ok || !data || !data.job) {
      $("answer").append(el("p", { className: "result-false" }, errorText(data, "This job is gone.")));
      updateStored(id, "unknown");
      showResult("Job");
      return;
    }
    $("answer").append(el("p", { className: "hint" }, (entry ? entry.label : "Job") + " · " + id));
    $("answer").append(jobCard(data.job));
    updateStored(id, data.job.state);
    showResult("Job");
    if (!FINAL_STATES.includes(data.job.state)) watch(id);
  }

  function updateStored(id, state) {
    const jobs = storedJobs();
    const job = jobs.find((entry) => entry.id === id);
    if (!job || job.state === state) return;
    job.state = state;
    storeJobs(jobs);
    renderJobList();
  }

  function jobCard(job) {
    const card = el("div", { className: "job", dataset: { job: job.id } });
    fillJobCard(card, job);
    return card;
  }

  function fillJobCard(card, job) {
    card.replaceChildren();
    card.dataset.state = job.state;
    card.append(el("p", { className: "status-line" }, el("strong", {}, "Background job"),
      stateBadge(job.state), el("span", { className: "job-id" }, job.id)));
    const progress = job.progress || {};
    if (progress.total || progress.done || job.state === "running") {
      const bar = el("progress", { attrs: { "aria-label": "Progress of the job" } });
      if (progress.total) {
        bar.max = progress.total;
        bar.value = Math.min(progress.done || 0, progress.total);
      }
      const counted = progress.total ? progress.done + " of " + progress.total : (progress.done || 0) + " done";
      card.append(bar, el("p", { className: "hint progress-text" },
        counted + (progress.status ? " · " + progress.status : "")));
    }
    if (!FINAL_STATES.includes(job.state)) {
      const cancel = el("button", { type: "button", className: "secondary job-cancel" },
        job.cancel_requested ? "Cancel requested" : "Cancel");
      cancel.disabled = Boolean(job.cancel_requested);
      cancel.addEventListener("click", () => cancelJob(job.id, cancel));
      card.append(el("div", { className: "buttons" }, cancel));
      return;
    }
    if (job.answer && typeof job.answer === "object") renderAnswer(job.answer, card, null);
    if (job.file) {
      const name = fileName(job.file.name || "");
      const get = el("button", { type: "button", className: "secondary job-download" },
        "Download " + name + " (" + job.file.size + " bytes)");
      get.addEventListener("click", () => downloadJobFile(job.id, name, get));
      card.append(el("div", { className: "buttons" }, get));
    }
  }

  async function cancelJob(id, button) {
    button.disabled = true;
    button.textContent = "Cancelling…";
    const { response, data } = await ask("cancel_action", { job: id });
    if (response.ok && data && data.job) {
      updateJob(data.job);
      announce("Cancel asked: the job is " + data.job.state + ".");
    } else {
      button.disabled = false;
      button.textContent = "Cancel";
      announce("The cancel failed: " + errorText(data, String(response.status)));
    }
  }

  async function downloadJobFile(id, name, button) {
    button.disabled = true;
    let response;
    try {
      ({ response } = await post("get_action_status", { job: id, download: true }));
    } catch (error) {
      response = { ok: false, status: error.message };
    }
    button.disabled = false;
    if (!response.ok) {
      announce("The download failed: " + response.status + ".");
      return;
    }
    const blob = await response.blob();
    const link = fileLink(blob, name, "job-download-" + id);
    button.parentElement.replaceWith(link);
    link.querySelector("a").click();
  }

  function updateJob(job) {
    const before = storedJobs().find((entry) => entry.id === job.id);
    if (before && before.state !== job.state) {
      announce((before.label || "Job") + ": " + job.state + ".");
    }
    updateStored(job.id, job.state);
    for (const card of document.querySelectorAll('.job[data-job="' + CSS.escape(job.id) + '"]')) {
      fillJobCard(card, job);
    }
  }

  const watched = new Set();

  // Asks for the job's state every POLL_MS until it ends (or the credential is forgotten).
  function watch(id) {
    if (watched.has(id)) return;
    watched.add(id);
    const since = Date.now();
    const later = () => (Date.now() - since > SLOW_AFTER_MS ? SLOW_POLL_MS : POLL_MS);
    const tick = async () => {
      if (!watched.has(id) || !authorization()) {
        watched.delete(id);
        return;
      }
      const answer = await ask("get_action_status", { job: id }); // status 0: try again
      if (answer.response.status === 404) {
        updateStored(id, "unknown");
        watched.delete(id);
        return;
      }
      if (answer.response.ok && answer.data && answer.data.job) {
        updateJob(answer.data.job);
        if (FINAL_STATES.includes(answer.data.job.state)) {
          watched.delete(id);
          return;
        }
      }
      window.setTimeout(tick, later());
    };
    window.setTimeout(tick, POLL_MS);
  }

  // --- approval requests: the lists (list_approvals), one request (get_approval), decisions

  // enabled: an action listed needs approval; shown: the panel is on screen; open: the id of
  // the request shown in the runner's place; asked: the latest list asked (older answers lose).
  const approvals = { enabled: false, shown: false, open: null, asked: 0 };

  // A time the server gives as ISO 8601 UTC, read as "2025-03-01 09:30:00 UTC".
  function approvalTime(iso) {
    const text = String(iso ?? "");
    const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(text);
    return el("time", { dateTime: text }, match ? match[1] + " " + match[2] + " UTC" : text || "—");
  }

  function approvalWhat(approval) {
    const label = approval.label || humanize(approval.action || "action");
    return label + (approval.model ? " on " + approval.model : "");
  }

  function requester(approval) {
    const by = approval.requested_by || {};
    return String(by.name || by.id || "someone");
  }

  async function loadApprovals() {
    const mine = ++approvals.asked;
    const { response, data } = await ask("list_approvals", { limit: APPROVALS_LIMIT });
    if (mine !== approvals.asked || $("workspace").hidden) return;
    const ok = response.ok && data && Array.isArray(data.to_decide) && Array.isArray(data.mine);
    const listed = ok && (data.to_decide.length > 0 || data.mine.length > 0);
    approvals.shown = approvals.shown || approvals.enabled || listed;
    $("approvals").hidden = !approvals.shown;
    $("approvals-error").textContent = ok ? "" : errorText(data, "The requests could not be read.");
    if (!ok) return;
    fillApprovalList($("to-decide"), data.to_decide, "Nothing awaits your decision.");
    fillApprovalList($("mine"), data.mine, "You have filed no request.");
    const pending = data.to_decide.length + data.mine.filter((a) => a.state === "pending").length;
    $("approvals-empty").hidden = pending > 0;
  }

  function fillApprovalList(list, items, empty) {
    list.replaceChildren();
    for (const approval of items) {
      const open = el("button", { type: "button", className: "approval-open", dataset: { approval: approval.id } },
        approvalWhat(approval) + (approval.count ? " · " + plural(approval.count, "record") : ""));
      if (approval.id === approvals.open) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => showApproval(approval.id, true));
      const when = list.id === "mine"
        ? el("span", { className: "when" }, "asked ", approvalTime(approval.created_at))
        : el("span", { className: "when" }, "by " + requester(approval) + ", expires ", approvalTime(approval.expires_at));
      list.append(el("li", { dataset: { approval: approval.id, state: approval.state } }, open,
        stateBadge(approval.state), when));
    }
    if (!items.length) list.append(el("li", { className: "empty" }, empty));
  }

  // Hides the request shown in the runner's place (another action or caller comes).
  function closeApproval() {
    approvals.open = null;
    $("approval").hidden = true;
    $("approval-outcome").hidden = true;
    $("approval-answer").replaceChildren();
    for (const button of document.querySelectorAll(".approval-open[aria-current]")) {
      button.removeAttribute("aria-current");
    }
  }

  // Shows one request in the runner's place, instead of an action's form.
  async function showApproval(id, focus) {
    const { response, data } = await ask("get_approval", { id });
    if (approvals.open !== id) {
      $("approval-outcome").hidden = true;
      $("approval-answer").replaceChildren();
      $("approval-comment").value = "";
    }
    approvals.open = id;
    for (const other of document.querySelectorAll("#actions button[aria-current], .approval-open[aria-current]")) {
      other.removeAttribute("aria-current");
    }
    for (const button of document.querySelectorAll('.approval-open[data-approval="' + CSS.escape(id) + '"]')) {
      button.setAttribute("aria-current", "true");
    }
    $("placeholder").hidden = true;
    $("action-form").hidden = true;
    current = { action: null, model: null, kind: null };
    fields = [];
    clearOutcome();
    $("approval").hidden = false;
    if (response.ok && data && data.approval && typeof data.approval === "object") {
      renderApproval(data.approval);
    } else {
      $("approval-title").textContent = "Approval request";
      $("approval-status").replaceChildren(el("span", { className: "result-false" },
        errorText(data, "This request could not be read (" + response.status + ").")));
      $("approval-facts").replaceChildren();
      $("approval-decide").hidden = true;
    }
    if (focus) {
      $("approval-title").focus();
      $("approval").scrollIntoView({ block: "start", behavior: "instant" });
    }
  }

  function fact(list, term, ...details) {
    list.append(el("dt", {}, term), el("dd", {}, ...details));
  }

  function shownValue(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function renderApproval(approval) {
    $("approval-title").textContent = "Request: " + approvalWhat(approval);
    $("approval").dataset.approval = approval.id;
    $("approval").dataset.state = approval.state;
    const needed = approval.approvals && approval.approvals.needed;
    const given = approval.approvals ? approval.approvals.given : 0;
    $("approval-status").replaceChildren(stateBadge(approval.state),
      el("span", { className: "hint" }, (needed ? given + " of " + needed : given) + " approvals"),
      el("span", { className: "job-id" }, approval.id));
    const facts = $("approval-facts");
    facts.replaceChildren();
    fact(facts, "Action", approval.action + (approval.model ? " on " + approval.model : ""));
    if (Array.isArray(approval.ids)) {
      const more = approval.count > approval.ids.length ? " (" + approval.count + " in all)" : "";
      fact(facts, "Records", approval.ids.map((id) => "#" + id).join(", ") + more);
    }
    const values = Object.entries(approval.params || {});
    fact(facts, "Values", values.length
      ? el("ul", { className: "values" }, ...values.map(([name, value]) => el("li", {}, name + ": " + shownValue(value))))
      : "none");
    fact(facts, "Reason", approval.reason || "none given");
    const by = approval.requested_by || {};
    fact(facts, "Requested by", requester(approval) + (by.id && by.name ? " (" + by.id + ")" : ""));
    fact(facts, "Created", approvalTime(approval.created_at));
    fact(facts, "Expires", approvalTime(approval.expires_at));
    const decisions = Array.isArray(approval.decisions) ? approval.decisions : [];
    if (decisions.length) {
      fact(facts, "Decisions", el("ul", { className: "decisions" }, ...decisions.map((decision) => {
        const who = decision.by ? decision.by.name || decision.by.id : "someone";
        return el("li", {}, decision.verdict + " by " + who + ", ", approvalTime(decision.at),
          decision.comment ? ": " + decision.comment : "");
      })));
    }
    const preview = approval.preview;
    if (preview && typeof preview === "object") {
      fact(facts, "Preview", preview.result === true
        ? el("span", { className: "preview-message" }, preview.message || "It would run.")
        : el("span", { className: "result-false" }, "It would fail now: " + errorText(preview, "no reason given.")));
    }
    if (approval.tampered) {
      fact(facts, "Warning", el("span", { className: "result-false" },
        "Altered in the database since it was made: it cannot be decided."));
    }
    if (approval.answer && typeof approval.answer === "object") {
      const box = el("div", { className: "approval-run" });
      renderAnswer(approval.answer, box, null);
      if (approval.answer.file) box.append(approvalFileButton(approval));
      fact(facts, "Its run", box);
    }
    const pending = approval.state === "pending" && !approval.tampered;
    $("approval-decide").hidden = !pending;
    $("approval-withdraw").hidden = !approval.can_withdraw;
    $("approval-may").textContent = approval.can_decide
      ? "You may approve or reject this request."
      : approval.can_withdraw
        ? "You made this request: another person must approve it. You may withdraw it."
        : "The server says you may not decide this request; Approve and Reject still send the decision, to show its answer.";
  }

  function approvalFileButton(approval) {
    const file = approval.answer.file;
    const name = fileName(file.name || "");
    const get = el("button", { type: "button", className: "secondary approval-download" },
      "Download " + name + " (" + file.size + " bytes)");
    get.addEventListener("click", async () => {
      get.disabled = true;
      let response;
      try {
        ({ response } = await post("get_approval", { id: approval.id, download: true }));
      } catch (error) {
        response = { ok: false, status: error.message };
      }
      get.disabled = false;
      if (!response.ok) {
        const data = response.json ? await response.json().catch(() => null) : null;
        announce("The download failed: " + errorText(data, String(response.status)));
        return;
      }
      const link = fileLink(await response.blob(), name, "approval-download-" + approval.id);
      get.replaceWith(link);
      link.querySelector("a").click();
    });
    return el("div", { className: "buttons" }, get);
  }

  // Approve, reject or withdraw the request shown; its answer (and the run's, for the last
  // approval needed) is shown above the request, which is shown again as it is now.
  async function decide(verdict) {
    const id = approvals.open;
    if (id === null) return;
    const params = { id };
    const comment = $("approval-comment").value;
    if (verdict !== "withdraw" && comment.trim()) params.comment = comment;
    const buttons = ["approval-approve", "approval-reject", "approval-withdraw"].map($);
    for (const button of buttons) button.disabled = true;
    $("approval").setAttribute("aria-busy", "true");
    let response = null;
    let data = null;
    try {
      const sent = await post(DECISIONS[verdict], params);
      response = sent.response;
      showRequest(sent.headers, sent.body);
      const text = await response.text();
      try {
        data = JSON.parse(text);
      } catch (error) {
        data = null;
      }
      $("response-status").textContent = response.status + " " + response.statusText;
      $("response-headers").textContent = headerLines([...response.headers.entries()]);
      $("response-body").textContent = data === null ? text : JSON.stringify(data, null, 2);
    } catch (error) {
      data = { result: false, errors: { non_field_errors: ["The request failed: " + error.message] } };
    } finally {
      for (const button of buttons) button.disabled = false;
      $("approval").setAttribute("aria-busy", "false");
    }
    if (approvals.open !== id) return;
    const outcome = $("approval-answer");
    outcome.replaceChildren();
    if (data && typeof data === "object" && !Array.isArray(data)) {
      const shown = { ...data };
      delete shown.job; // the run's job belongs to the requester: its state is shown below
      renderAnswer(shown, outcome, response);
      if (data.file && typeof data.file === "object") {
        outcome.append(el("p", { className: "hint" }, "The run answered a file, " + fileName(data.file.name || "") +
          " (" + data.file.size + " bytes): its requester downloads it from the request."));
      }
      if (data.job && typeof data.job === "object") {
        outcome.append(el("p", { className: "hint" }, "Background job " + data.job.id + ": " + data.job.state +
          " (it belongs to the requester)."));
      }
    } else {
      outcome.append(statusLine(null, response), el("p", { className: "message" },
        "The answer is not a JSON object" + (response ? ": " + response.status : "") + "."));
    }
    $("approval-outcome").hidden = false;
    const ok = Boolean(response && response.ok && data && data.result !== false);
    if (ok) $("approval-comment").value = "";
    $("approval-outcome-title").focus();
    const summary = data && data.message ? data.message : errorText(data, "no answer");
    announce(sentence((ok ? "Done: " : response && response.ok ? "The run failed: " : "Refused: ") + summary));
    if (data && data.approval && typeof data.approval === "object" && data.approval.id === id) {
      renderApproval(data.approval);
    } else {
      await refreshApproval(id);
    }
    loadApprovals();
  }

  // The request shown, read again (after a refused decision: it may have ended meanwhile).
  async function refreshApproval(id) {
    const { response, data } = await ask("get_approval", { id });
    if (approvals.open === id && response.ok && data && data.approval) renderApproval(data.approval);
  }

  // Under the answer of a run that filed a request: what happens now, and the way to it.
  function filedNotice(filed) {
    const open = el("button", { type: "button", className: "secondary", id: "open-filed" }, "Show the request");
    open.addEventListener("click", () => showApproval(filed.id, true));
    return el("div", { className: "approval-filed", dataset: { approval: filed.id } },
      el("p", {}, el("strong", {}, "An approval request was filed."),
        " Nothing ran yet: the action runs once another person approves it in the Approvals panel",
        filed.expires_at ? el("span", {}, " (before ", approvalTime(filed.expires_at), ")") : null, "."),
      open);
  }

  // --- start

  $("endpoint").textContent = messagesUrl;
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("credential").value;
    if (!value.trim()) return;
    window.sessionStorage.setItem(STORAGE_KEY, normalizeCredential(value));
    $("credential").value = "";
    connect();
  });
  $("forget").addEventListener("click", () => {
    window.sessionStorage.removeItem(STORAGE_KEY);
    // The jobs belong to the caller of that credential.
    window.sessionStorage.removeItem(JOBS_KEY);
    watched.clear();
    showLogin("");
  });
  $("approvals-refresh").addEventListener("click", () => {
    loadApprovals();
    if (approvals.open !== null) refreshApproval(approvals.open);
  });
  for (const verdict of Object.keys(DECISIONS)) {
    $("approval-" + verdict).addEventListener("click", () => decide(verdict));
  }
  $("jobs-clear").addEventListener("click", () => {
    window.sessionStorage.removeItem(JOBS_KEY);
    watched.clear();
    renderJobList();
  });
  const form = $("action-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit("run");
  });
  $("preview").addEventListener("click", () => submit("preview"));
  // Ctrl+Enter (or Cmd+Enter) runs from anywhere in the form, text areas included.
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!$("run").disabled) form.requestSubmit($("run"));
    }
  });
  // Fields are marked invalid once left, or once the form was sent; fixing one unmarks it.
  form.addEventListener("focusout", (event) => {
    const node = event.target;
    if (node.matches && node.matches("input, select, textarea")) node.classList.add("touched");
  });
  form.addEventListener("input", (event) => {
    const node = event.target;
    if (node.getAttribute("aria-invalid") === "true" && node.validity && node.validity.valid) {
      node.removeAttribute("aria-invalid");
    }
  });
  if (authorization()) {
    connect();
  } else {
    showLogin("");
  }
})();
