// The stand-in Payment Element's iframe (see v3.js): shows the methods the PaymentIntent offers, checks what the
// customer types as Stripe's Element does (a card number with spaces, "MM / YY", an IBAN's checksum), and confirms
// the PaymentIntent with the API itself when the page calls stripe.confirmPayment.
"use strict";
const API = "https://api.stripe.com/v1";
let parentOrigin = null;
let setup = null;      // {key, clientSecret}
let method = null;     // the chosen payment method type
const fields = {};     // name -> input of the current method

// What each method asks for, as Stripe's Payment Element labels it.
const METHODS = {
  card: { label: "Card", fields: [
    ["number", "Card number", { autocomplete: "cc-number", inputmode: "numeric", placeholder: "1234 1234 1234 1234" }],
    ["expiry", "Expiration date", { autocomplete: "cc-exp", inputmode: "numeric", placeholder: "MM / YY" }],
    ["cvc", "Security code", { autocomplete: "cc-csc", inputmode: "numeric", placeholder: "CVC" }],
    ["postal_code", "ZIP code", { autocomplete: "postal-code", placeholder: "12345" }],
  ] },
  sepa_debit: { label: "SEPA Debit", fields: [
    ["name", "Full name", { autocomplete: "name" }],
    ["email", "Email", { autocomplete: "email", type: "email" }],
    ["iban", "IBAN", { placeholder: "DE00 0000 0000 0000 0000 00" }],
  ], note: "By providing your payment information and confirming this payment, you authorise the shop and Stripe, "
    + "its payment service provider, to send instructions to your bank to debit your account, and your bank to "
    + "debit your account in accordance with those instructions." },
  ideal: { label: "iDEAL", fields: [["bank", "iDEAL Bank", { select: ["ABN AMRO", "ING", "Rabobank", "SNS Bank"] }]],
    note: "After submission, you will be redirected to securely complete next steps." },
  klarna: { label: "Klarna", fields: [], note: "After submission, you will be redirected to securely complete next steps." },
};

function $(id) { return document.getElementById(id); }

function post(message) {
  if (parentOrigin) window.parent.postMessage(message, parentOrigin);
}

function resize() {
  post({ type: "resize", height: Math.ceil(document.documentElement.getBoundingClientRect().height) + 4 });
}

function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let digit = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
  }
  return sum % 10 === 0;
}

function ibanValid(iban) {
  const moved = iban.slice(4) + iban.slice(0, 4);
  const digits = moved.replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rest = 0;
  for (const d of digits) rest = (rest * 10 + Number(d)) % 97;
  return rest === 1;
}

// The field's problem as Stripe words it ({code, message}), or null; `value` is what is typed.
const CHECKS = {
  number(value) {
    const digits = value.replace(/[\s-]/g, "");
    if (!/^\d*$/.test(digits)) return { code: "invalid_number", message: "Your card number is invalid." };
    if (digits.length < 16) return { code: "incomplete_number", message: "Your card number is incomplete." };
    if (!luhn(digits)) return { code: "invalid_number", message: "Your card number is invalid." };
    return null;
  },
  expiry(value) {
    const match = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(value);
    if (!match) return { code: "incomplete_expiry", message: "Your card's expiration date is incomplete." };
    const month = Number(match[1]);
    const year = match[2].length === 2 ? 2000 + Number(match[2]) : Number(match[2]);
    if (month < 1 || month > 12) return { code: "invalid_expiry_month", message: "Your card's expiration date is invalid." };
    const now = new Date();
    if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
      return { code: "invalid_expiry_year_past", message: "Your card's expiration year is in the past." };
    }
    return null;
  },
  cvc(value) {
    return /^\d{3,4}$/.test(value.trim()) ? null
      : { code: "incomplete_cvc", message: "Your card's security code is incomplete." };
  },
  postal_code(value) {
    return value.trim() ? null : { code: "incomplete_zip", message: "Your ZIP is incomplete." };
  },
  name(value) {
    return value.trim() ? null : { code: "incomplete_name", message: "Please provide your full name." };
  },
  email(value) {
    if (!value.trim()) return { code: "incomplete_email", message: "Your email address is incomplete." };
    return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value.trim()) ? null
      : { code: "email_invalid", message: "Your email address is invalid." };
  },
  iban(value) {
    const iban = value.replace(/\s/g, "").toUpperCase();
    if (iban.length < 15) return { code: "incomplete_iban", message: "Your IBAN is incomplete." };
    if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(iban) || !ibanValid(iban)) {
      return { code: "invalid_iban", message: "Your IBAN is invalid." };
    }
    return null;
  },
  bank() { return null; },
};

function problems() {
  const found = [];
  for (const [name, input] of Object.entries(fields)) {
    const problem = CHECKS[name](input.value);
    if (problem) found.push([name, problem]);
  }
  return found;
}

function changed() {
  const typed = Object.values(fields).filter((input) => input.tagName === "INPUT");
  post({ type: "change", method, complete: problems().length === 0,
    empty: typed.every((input) => input.value.trim() === "") });
}

function showErrors(found) {
  for (const node of document.querySelectorAll(".error")) node.remove();
  for (const [name, problem] of found) {
    const error = document.createElement("p");
    error.className = "error";
    error.id = `${name}-error`;
    error.setAttribute("role", "alert");
    error.textContent = problem.message;
    fields[name].setAttribute("aria-invalid", "true");
    fields[name].setAttribute("aria-describedby", error.id);
    fields[name].after(error);
  }
  resize();
}

function choose(type) {
  method = type;
  const spec = METHODS[type];
  const panel = $("panel");
  panel.replaceChildren();
  for (const key of Object.keys(fields)) delete fields[key];
  const row = document.createElement("div");
  for (const [name, label, attrs] of spec.fields) {
    const wrapper = document.createElement("div");
    wrapper.className = "field";
    const caption = document.createElement("label");
    caption.htmlFor = `field-${name}`;
    caption.textContent = label;
    wrapper.append(caption);
    let input;
    if (attrs.select) {
      input = document.createElement("select");
      for (const bank of attrs.select) input.append(new Option(bank, bank.toLowerCase().replace(/\s+/g, "_")));
    } else {
      input = document.createElement("input");
      input.type = attrs.type || "text";
      for (const attr of ["autocomplete", "inputmode", "placeholder"]) if (attrs[attr]) input.setAttribute(attr, attrs[attr]);
    }
    input.name = name;
    input.id = `field-${name}`;
    input.addEventListener("input", () => {
      input.removeAttribute("aria-invalid");
      changed();
    });
    wrapper.append(input);
    fields[name] = input;
    (type === "card" && name !== "number" ? row : panel).append(wrapper);
  }
  if (row.children.length) {
    row.className = "row";
    panel.append(row);
  }
  if (spec.note) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = spec.note;
    panel.append(note);
  }
  resize();
  changed();
}

function paymentMethodData() {
  const value = (name) => fields[name].value.trim();
  if (method === "card") {
    const [, month, year] = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(value("expiry"));
    return { type: "card", card: { number: value("number").replace(/[\s-]/g, ""), exp_month: Number(month),
      exp_year: year.length === 2 ? 2000 + Number(year) : Number(year), cvc: value("cvc") },
    billing_details: { address: { postal_code: value("postal_code") } } };
  }
  if (method === "sepa_debit") {
    return { type: "sepa_debit", sepa_debit: { iban: value("iban").replace(/\s/g, "").toUpperCase() },
      billing_details: { name: value("name"), email: value("email") } };
  }
  if (method === "ideal") return { type: "ideal", ideal: { bank: fields.bank.value } };
  return { type: method };
}

function formEncode(value, prefix, out = new URLSearchParams()) {
  if (value === undefined || value === null) return out;
  if (typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) formEncode(inner, prefix ? `${prefix}[${key}]` : key, out);
  } else out.append(prefix, String(value));
  return out;
}

async function api(method_, path, params) {
  const body = formEncode(params).toString();
  let response;
  try {
    response = method_ === "GET" ? await fetch(`${API}${path}?${body}`)
      : await fetch(`${API}${path}`, { method: method_, body, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  } catch (_) {
    return { error: { type: "api_connection_error", message: "We could not reach Stripe. Check your connection." } };
  }
  const json = await response.json().catch(() => ({}));
  return response.ok ? { paymentIntent: json } : { error: json.error || { type: "api_error", message: "Stripe failed." } };
}

function intentPath() {
  return `/payment_intents/${/^(pi_[A-Za-z0-9]+)_secret_/.exec(setup.clientSecret)[1]}`;
}

function check() {
  const found = problems();
  showErrors(found);
  if (!found.length) return null;
  fields[found[0][0]].focus();
  const [, problem] = found[0];
  return { type: "validation_error", code: problem.code, message: problem.message };
}

async function confirm(confirmParams) {
  const invalid = check();
  if (invalid) return { error: invalid };
  const extra = confirmParams.payment_method_data || {};
  const data = paymentMethodData();
  data.billing_details = { ...(extra.billing_details || {}), ...data.billing_details };
  const params = { key: setup.key, client_secret: setup.clientSecret, payment_method_data: data,
    return_url: confirmParams.return_url };
  if (method === "sepa_debit") params.mandate_data = { customer_acceptance: { type: "online", online: { infer_from_client: true } } };
  for (const input of Object.values(fields)) input.disabled = true;
  try {
    return await api("POST", `${intentPath()}/confirm`, params);
  } finally {
    for (const input of Object.values(fields)) input.disabled = false;
  }
}

async function init(message) {
  setup = { key: message.key, clientSecret: message.clientSecret };
  const read = await api("GET", intentPath(), { key: setup.key, client_secret: setup.clientSecret });
  const offered = read.error ? ["card"] : read.paymentIntent.payment_method_types.filter((type) => METHODS[type]);
  const methods = $("methods");
  for (const type of offered) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "method";
    radio.value = type;
    radio.addEventListener("change", () => choose(type));
    label.append(radio, document.createTextNode(` ${METHODS[type].label}`));
    methods.append(label);
  }
  methods.querySelector("input").checked = true;
  choose(offered[0]);
  post({ type: "ready" });
}

window.addEventListener("message", async (event) => {
  if (event.source !== window.parent) return;
  const message = event.data || {};
  if (message.type === "init") {
    parentOrigin = event.origin;
    await init(message);
    return;
  }
  if (event.origin !== parentOrigin) return;
  let result;
  if (message.type === "check") result = { error: check() };
  else if (message.type === "confirm") result = await confirm(message.confirmParams || {});
  else return;
  post({ type: "reply", id: message.id, result });
});
