// The Flex Actions debug console: lists the actions, builds a form per action, sends the real
// execute_action request and shows both sides of the exchange. Plain JavaScript, no build step.
(function () {
  "use strict";

  const STORAGE_KEY = "flexactions.authorization";
  const MASK = "••••••••";
  const messagesUrl = new URL("../messages/", window.location.href).href;
  const $ = (id) => document.getElementById(id);

  let fields = [];
  let downloadUrl = null;
  // The action whose form is shown, for controls that ask the server (computed options).
  let current = { action: null, model: null };

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
    renderActions(data);
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
    for (const [model, entries] of sections) {
      const list = el("ul");
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
          el("span", {}, entry.action.label || entry.action.name),
          el("span", { className: "kind kind-" + kind }, kind),
        );
        button.addEventListener("click", () => {
          for (const other of nav.querySelectorAll("button[aria-current]")) {
            other.removeAttribute("aria-current");
          }
          button.setAttribute("aria-current", "true");
          renderForm(entry.action, entry.model);
        });
        list.append(el("li", {}, button));
      }
      const title = model === null ? "Common actions" : model;
      nav.append(el("section", { className: "group", dataset: { group: title } }, el("h2", {}, title), list));
    }
    if (!actions.length) nav.append(el("p", { className: "hint" }, "No actions are registered."));
  }

  // --- one form per action

  function fieldBox(name, labelText, required, input, node, description) {
    const label = el("label", { htmlFor: input.id }, labelText);
    if (required) label.append(el("span", { className: "required-mark", title: "required" }, "*"));
    const errors = el("ul", { className: "errors field-errors", id: "errors-" + input.id });
    const box = el("div", { className: "field", dataset: { field: name } }, label);
    box.append(node);
    if (description) box.append(el("p", { className: "hint" }, description));
    box.append(errors);
    return { box, errors };
  }

  // A wire id: a JSON number for integers JavaScript holds exactly, the text otherwise.
  function parseId(text) {
    const value = text.trim();
    if (/^-?[0-9]+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
    return value;
  }

  function textControl(id, param, multiline, code) {
    const input = multiline
      ? el("textarea", { id, className: code ? "code" : "", spellcheck: !code })
      : el("input", { id, type: "text" });
    input.required = param.required;
    return {
      input,
      read: () => (input.value === "" ? undefined : input.value),
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
    };
  }

  function selectControl(id, param) {
    let options = (param.params && param.params.options) || [];
    const select = el("select", { id });
    const fill = () => {
      select.replaceChildren(el("option", { value: "" }, "—"));
      options.forEach((option, index) => {
        select.append(el("option", { value: String(index) }, option.name ?? String(option.value)));
      });
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
        if (many && many.value.trim()) request.ids = many.value.split(",").map(parseId);
        const { response } = await post("get_field_options", request);
        const data = await response.json().catch(() => null);
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
    };
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
    };
  }

  function checkboxControl(id) {
    const input = el("input", { id, type: "checkbox" });
    return { input, read: () => input.checked };
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
      attrs: { "aria-label": "Search " + related },
    });
    const results = el("ul", { className: "picker-results" });
    const more = el("button", { type: "button", className: "picker-more", hidden: true }, "More…");
    let page = 1;
    let timer = null;
    let picked = null;

    let latest = 0;

    async function lookup(append) {
      const mine = ++latest;
      const { response } = await post("get_related_options", {
        model: related,
        search: search.value,
        page,
        limit: 10,
      });
      const data = await response.json();
      if (mine !== latest) return; // a newer search, or a pick, came meanwhile
      if (!append) results.replaceChildren();
      if (!response.ok) {
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

  function renderForm(action, model) {
    const kind = kindOf(action);
    $("placeholder").hidden = true;
    $("action-form").hidden = false;
    $("exchange").hidden = true;
    $("action-title").textContent = action.label || action.name;
    const where = model === null ? "a common action" : "a " + kind + " action on " + model;
    $("action-meta").textContent = action.name + " · " + where + (action.description ? " · " + action.description : "");
    fields = [];
    current = { action, model };
    const target = $("target");
    target.replaceChildren();
    if (kind === "record") {
      const input = el("input", { id: "target-id", type: "text", required: true, placeholder: "15" });
      target.append(fieldBox("id", "Record id", true, input, input, "The primary key of the record.").box);
    } else if (kind === "bulk") {
      const input = el("input", { id: "target-ids", type: "text", required: true, placeholder: "1, 2, 3" });
      const inverse = el("input", { id: "target-inverse", type: "checkbox" });
      inverse.addEventListener("change", () => {
        input.required = !inverse.checked;
      });
      target.append(
        fieldBox("ids", "Record ids", true, input, input, "Primary keys, separated by commas.").box,
        el("label", { className: "inline" }, inverse, " All rows except these ids (inverseIds)"),
      );
    }
    const box = $("params");
    box.replaceChildren();
    for (const param of action.params || []) {
      const control = controlFor(param, "param-" + param.name);
      const { box: fieldElement, errors } = fieldBox(
        param.name,
        param.label || param.verbose_name || param.name,
        param.required,
        control.input,
        control.wrapper || control.input,
        param.description,
      );
      box.append(fieldElement);
      fields.push({ name: param.name, read: control.read, errors });
    }
    $("non-field-errors").replaceChildren();
    const form = $("action-form");
    form.dataset.action = action.name;
    form.dataset.model = model || "";
    form.dataset.kind = kind;
    form.onsubmit = (event) => {
      event.preventDefault();
      run(action, model, kind);
    };
  }

  function clearErrors() {
    $("non-field-errors").replaceChildren();
    for (const list of document.querySelectorAll(".field-errors")) list.replaceChildren();
  }

  function showErrors(errors) {
    for (const [key, messages] of Object.entries(errors)) {
      const list = document.getElementById("errors-param-" + key);
      const target = list || $("non-field-errors");
      for (const message of [].concat(messages)) {
        const text = list || key === "non_field_errors" ? String(message) : key + ": " + message;
        target.append(el("li", {}, text));
      }
    }
  }

  async function run(action, model, kind) {
    clearErrors();
    const form = $("action-form");
    if ($("browser-validation").checked && !form.reportValidity()) return;
    const params = { name: action.name };
    if (model !== null) params.model = model;
    if (kind === "record") params.id = parseId($("target-id").value);
    if (kind === "bulk") {
      params.ids = $("target-ids").value.split(",").map((part) => part.trim()).filter(Boolean).map(parseId);
      if ($("target-inverse").checked) params.inverseIds = true;
    }
    const values = {};
    const local = {};
    for (const field of fields) {
      try {
        const value = field.read();
        if (value !== undefined) values[field.name] = value;
      } catch (error) {
        local[field.name] = [error.message];
      }
    }
    if (Object.keys(local).length) {
      showErrors(local);
      return;
    }
    params.params = values;
    $("run").disabled = true;
    try {
      const { response, headers, body } = await post("execute_action", params);
      showRequest(headers, body);
      await showResponse(response);
    } catch (error) {
      $("non-field-errors").append(el("li", {}, "The request failed: " + error.message));
    } finally {
      $("run").disabled = false;
    }
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

  async function showResponse(response) {
    $("response-status").textContent = response.status + " " + response.statusText;
    $("response-headers").textContent = headerLines([...response.headers.entries()]);
    const answer = $("answer");
    answer.replaceChildren();
    const disposition = response.headers.get("Content-Disposition") || "";
    if (/^\s*attachment/i.test(disposition)) {
      const blob = await response.blob();
      const name = fileName(disposition);
      if (downloadUrl) URL.revokeObjectURL(downloadUrl);
      downloadUrl = URL.createObjectURL(blob);
      answer.append(
        el("p", {}, "A file answer: ",
          el("a", { id: "download", href: downloadUrl, download: name }, "Download " + name),
          " (" + blob.size + " bytes, " + (blob.type || "no type") + ")"),
      );
      $("response-body").textContent = blob.type.startsWith("text/") ? await blob.text() : "";
      return;
    }
    const text = await response.text();
    let data = null;
    try {
      data = JSON.parse(text);
    } catch (error) {
      data = null;
    }
    $("response-body").textContent = data === null ? text : JSON.stringify(data, null, 2);
    if (data === null || typeof data !== "object" || Array.isArray(data)) return;
    if ("result" in data) {
      answer.append(el("p", { className: data.result ? "result-true" : "result-false" }, "result: " + data.result));
    }
    if (data.message) answer.append(el("p", { className: "message" }, data.message));
    if (data.html) {
      // No scripts, no same-origin access: the answer's markup is only displayed.
      answer.append(el("iframe", { className: "html-answer", title: "HTML answer", srcdoc: data.html, attrs: { sandbox: "" } }));
    }
    if (data.errors && typeof data.errors === "object") showErrors(data.errors);
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
    showLogin("");
  });
  if (authorization()) {
    connect();
  } else {
    showLogin("");
  }
})();
