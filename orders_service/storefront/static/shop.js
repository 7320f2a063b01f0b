// The reference storefront: the seed's Order Creation Flow against the orders-service API and Stripe.js.
// Plain JavaScript, no build step and no framework, so that any frontend developer can read it top to bottom.
//
//   1. GET /api/config                 -> the publishable key, the currency, where Stripe.js lives
//   2. GET /api/products, a cart kept in the page, GET /api/delivery-methods?country=
//   3. POST /api/auth/login or /register -> a bearer token (kept in sessionStorage)
//   4. POST /api/orders (cash on delivery: 204 + Location) or /api/orders/with-payment (a client secret),
//      always with an Idempotency-Key: a double click or a retried request places one order
//   5. pay: Stripe's Payment Element with the order's client secret, stripe.confirmPayment with a return_url
//      (/shop/?order=<id>); a bank's page sends the shopper back there
//   6. PATCH /api/orders/{id}/paid: the service, not the page, asks Stripe whether it is paid (204), processing (202)
//      or not (then GET /api/orders/{id}/payment says why, and gives the client secret to pay again)
//   7. the confirmation, and "My orders" with each order's date, items, status and tracking number
//
// Two ways to pay, each in its own functions below: Stripe's own (Stripe.js and its Payment Element: cards,
// bank debits, bank redirects — whatever the PaymentIntent offers), and the Stripe emulator's (its Stripe.js has
// no Payment Element and cannot confirm a payment with card data: the card is checked and saved before the order).
// What the shopper reads is said in the shopper's words: the API's messages are mapped, not shown raw.
"use strict";

// The API's base URL: this page is served by the service itself. A page on another origin puts the service's
// URL here, and that origin into the service's CORS_ORIGINS.
const API_BASE = "";
const STRIPE_JS = "https://js.stripe.com/v3/";
const state = {
  config: null,        // GET /api/config
  stripe: null,        // Stripe(publishableKey)
  card: null,          // the Payment Element (the emulator's card widget with the emulator)
  elements: null,      // the Payment Element's Elements, made with the client secret of the order being paid
  elementsSecret: null,
  cardReady: null,     // resolves once the Payment Element is ready (shown at its size)
  returningTo: null,   // an order in the address (/shop/?order=…) that waits for the shopper to sign in
  cardInputs: null,    // the emulator's card widget: its inputs by name
  products: [],
  methods: [],
  cart: [],            // [{productId, variantId, name, unitPrice, quantity}]
  idempotencyKey: null, // one per checkout attempt; a new one once the cart or the form changes
  busy: false,
};
const session = {     // survives a reload: the token, and the order being paid
  get token() { return sessionStorage.getItem("token"); },
  get customer() { return JSON.parse(sessionStorage.getItem("customer") || "null"); },
  get order() { return JSON.parse(sessionStorage.getItem("order") || "null"); },
  signIn(customer, token) {
    sessionStorage.setItem("token", token);
    sessionStorage.setItem("customer", JSON.stringify(customer));
  },
  signOut() { sessionStorage.removeItem("token"); sessionStorage.removeItem("customer"); this.forget(); },
  remember(order) { sessionStorage.setItem("order", JSON.stringify(order)); },
  forget() { sessionStorage.removeItem("order"); },
};

const $ = (id) => document.getElementById(id);

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// --- money: shown in the store's currency; sums in minor units, never in floating point -----------------

function currencyCode(currency) {
  return currency || (state.config && state.config.currency) || "USD";
}

function minorDigits(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency: currencyCode(currency) })
    .resolvedOptions().maximumFractionDigits;
}

function toMinor(amount, currency) {
  return Math.round(amount * 10 ** minorDigits(currency));
}

function money(amount, currency) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: currencyCode(currency) }).format(amount);
}

function moneyOfMinor(minor, currency) {
  return money(minor / 10 ** minorDigits(currency), currency);
}

function randomKey() {
  // crypto.randomUUID needs a secure context; getRandomValues works on any http page (a LAN address too).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the API -----------------------------------------------------------------------------------------

class ApiError extends Error {
  // The service's error body: {code, status, message, errors?}, kept as it came (integrations read it);
  // shopperMessage() says it to the shopper.
  constructor(status, body) {
    super((body && body.message) || `The service answered ${status}`);
    this.status = status;
    this.errors = (body && body.errors) || null;
  }
}

async function api(method, path, { body, idempotencyKey } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(API_BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (response.status === 401 && session.token) {
    session.signOut();
    showAccount();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, location: response.headers.get("Location"), status: response.status };
}

// --- what the shopper reads ------------------------------------------------------------------------------

// The form's own names for the API's fields, so that a refusal names what the shopper sees (and focuses it).
const FIELDS = {
  street: ["Street", "street"], city: ["City", "city"], state: ["State", "state"], zipCode: ["ZIP code", "zip"],
  country: ["Country", "country"], deliveryMethodId: ["Delivery method", "delivery-method"], notes: ["Notes", "notes"],
  email: ["Email", "email"], password: ["Password", "password"], name: ["Name", "name"],
};

function fieldProblem(reason, input) {
  const text = [].concat(reason).join(" ");
  const typed = $(input) && $(input).value !== undefined ? $(input).value.trim() : null;
  let match;
  if (typed === "" || /required|may not be null|Shorter than minimum length 1\b/i.test(text)) return "fill it in";
  if ((match = text.match(/(?:Longer than maximum length|Length must be between \d+ and) (\d+)/i))) {
    return `it can be at most ${match[1]} characters long`;
  }
  if (/country/i.test(text)) return "enter a country, such as US or Germany";
  return text.replace(/\.$/, "").toLowerCase();
}

// The first field the API refused, as {label, input, problem}; null when it named none we show.
function refusedField(errors) {
  if (!errors || typeof errors !== "object") return null;
  const flat = [];
  (function walk(value, key) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, k);
    } else flat.push([key, value]);
  })(errors, null);
  for (const [key, reason] of flat) {
    if (FIELDS[key]) return { label: FIELDS[key][0], input: FIELDS[key][1], problem: fieldProblem(reason, FIELDS[key][1]) };
  }
  if (flat.some(([key]) => key === "items" || key === "quantity" || key === "productId")) {
    return { label: null, input: null, problem: state.cart.length ? "Your cart could not be ordered as it is: remove "
      + "its products and add them again." : "Your cart is empty: add a product before you place an order." };
  }
  return null;
}

// The API's answer, or a failure to reach it, in the words of a shopper; the API's own message when it is
// already one (the service writes most of them for people).
function shopperMessage(error) {
  if (!(error instanceof ApiError)) return "The shop could not be reached: check your connection and try again.";
  const message = error.message;
  let match;
  if (error.status === 401) return "Your session has ended: sign in again to go on.";
  if (error.status === 429) return "Too many tries in a short time: wait a minute, then try again.";
  if (error.status === 503) return "The shop is busy right now: try again in a moment.";
  if (error.status >= 500) return "Something went wrong on our side: try again in a moment.";
  const field = refusedField(error.errors);
  if (field) return field.label ? `Check ${field.label}: ${field.problem}.` : field.problem;
  if ((match = message.match(/^Product '(.+)' has insufficient stock\. Available: (\d+), Requested: (\d+)/))) {
    return match[2] === "0" ? `Sorry, ${match[1]} is sold out: remove it from your cart to order the rest.`
      : `Sorry, only ${match[2]} of ${match[1]} are left (your cart has ${match[3]}): remove some from your cart.`;
  }
  if ((match = message.match(/^Price of '(.+)' has changed: you saw (.+), it is now (.+)$/))) {
    return `The price of ${match[1]} has changed to ${money(Number(match[3]))}: remove it from your cart and `
      + "add it again to order it at that price.";
  }
  if ((match = message.match(/^Product '(.+)' is (not available|sold by variant)/))) {
    return `${match[1]} can no longer be ordered this way: remove it from your cart and add it again.`;
  }
  if ((match = message.match(/^Delivery method '(.+)' does not deliver to (.+)$/))) {
    return `${match[1]} does not deliver to ${match[2]}: choose another delivery method.`;
  }
  if ((match = message.match(/^Delivery method '(.+)' cannot carry/))) {
    return `${match[1]} cannot carry an order this heavy: choose another delivery method, or order less.`;
  }
  if ((match = message.match(/^Delivery method '(.+)' does not accept cash on delivery/))) {
    return `${match[1]} does not take cash on delivery: pay online by card, or choose another delivery method.`;
  }
  if (/below the smallest online payment/.test(message)) {
    return "This order is too small to pay by card: add something, or choose cash on delivery.";
  }
  if (/more than an online payment can take/.test(message)) {
    return "This order is too large to pay by card: order less at a time, or choose cash on delivery.";
  }
  if (/Invalid email or password/.test(message)) return "That email and password do not match an account.";
  if (/email already exists/.test(message)) return "An account with this email exists already: sign in instead.";
  if (/still being processed/.test(message)) return "Your order is still being placed: wait a moment.";
  if (/another window/.test(message)) return "This order is being paid in another window: reload the page.";
  if (/not found/i.test(message)) return "Something in your order is no longer sold: reload the page and try again.";
  return message;
}

// The provider's reason a card was refused; Stripe words its card errors for card holders ("Your card
// was declined."), so those are shown as they are.
function providerReason(message) {
  if (!message || /^bad request$/i.test(message)) return "Your card was not accepted.";
  if (/authenticat/i.test(message)) return "Your bank did not confirm that it is you (authentication failed).";
  if (/^Your card/.test(message)) return message;
  return `Your card was refused: ${message}`;
}

// The order as a shopper says it: what happened, and what happens next.
function statusText(order) {
  const cash = order.paymentMethod === "cash_on_delivery";
  const refund = { refunded: "refunded", partially_refunded: "partly refunded" }[order.paymentStatus];
  switch (order.status) {
    case "pending":
      if (order.paymentStatus === "processing") return "Payment processing: your bank is transferring the money";
      if (order.paymentStatus === "action_required") return "Waiting for you to confirm the payment at your bank";
      return order.paymentStatus === "failed" ? "Not paid: the last payment did not go through"
        : "Waiting for your payment";
    case "confirmed":
      if (refund) return `Confirmed, ${refund}`;
      if (order.paymentStatus === "authorized") return "Confirmed: your card is charged when the order ships";
      return cash ? "Confirmed: you pay on delivery" : order.paymentStatus === "paid" ? "Confirmed and paid" : "Confirmed";
    case "shipped":
      return refund ? `Shipped, ${refund}` : cash && order.paymentStatus !== "paid" ? "Shipped: you pay on delivery" : "Shipped";
    case "delivered":
      return refund ? `Delivered, ${refund}` : "Delivered";
    case "canceled":
      return refund ? `Canceled and ${refund}` : "Canceled";
    case "expired":
      return refund ? `Expired and ${refund}` : "Expired: it was not paid in time";
    default:
      return order.status;
  }
}

function show(id, message) {
  const node = $(id);
  node.textContent = message || "";
  node.hidden = !message;
}

// Where the shopper is looking: the message is scrolled into the middle of the screen, and focus goes to it
// (or to the field it is about), so that keyboard and screen reader users land on it too.
function alertAt(id, message, field) {
  show(id, message);
  const target = field ? $(field) : $(id);
  $(id).scrollIntoView({ block: "center" });
  target.focus({ preventScroll: true });
}

function bringIntoView(section, focusId) {
  $(section).scrollIntoView({ block: "start" });
  $(focusId || section).focus({ preventScroll: true });
}

// --- Stripe.js ---------------------------------------------------------------------------------------

function usesEmulator() {
  return !state.config.stripeJsUrl.startsWith(STRIPE_JS);
}

function loadStripe() {
  return new Promise((resolve, reject) => {
    const script = element("script", null, { src: state.config.stripeJsUrl });
    script.addEventListener("load", () => resolve());
    script.addEventListener("error", () => reject(new Error(`Stripe.js did not load from ${state.config.stripeJsUrl}`)));
    document.head.appendChild(script);
  });
}

// A card the page refuses before any order exists: the message, and the input it is about.
class CardProblem extends Error {
  constructor(message, input) {
    super(message);
    this.input = input || null;
  }
}

// Each way to pay: mount() prepares the group Card; prepare() checks (with the emulator, saves) the card before
// the order is placed, throwing CardProblem; placed(order, prepared) pays the order just placed. The emulator's
// pay(order, prepared) resolves to null once the service has the order paid, or to {declined: reason}.
function cardFlow() {
  return usesEmulator() ? emulatorCard : paymentElement;
}

// The order is paid: the service asks the provider (PATCH /paid); null, or why it is not paid.
async function confirmWithService(order) {
  try {
    await api("PATCH", `/api/orders/${order.orderId}/paid`);
    return null;
  } catch (error) {
    if (error.status === 503) return null; // the provider is busy: its webhook confirms the order; we poll
    if (/already been marked as paid/.test(error.message)) return null;
    const match = error.message.match(/the PaymentIntent is (\w+)(?: \((.*)\))?$/);
    if (match && match[1] === "processing") return null; // the bank is still at it: we poll
    if (match && match[1] === "requires_action") return { declined: "Your bank is still waiting for you to confirm the payment." };
    if (match && match[1] === "canceled") return { declined: "This payment was canceled." };
    if (match) return { declined: providerReason(match[2]) };
    return { declined: shopperMessage(error) };
  }
}

// --- paying online: Stripe's own flow (Stripe.js and its Payment Element) ---------------------------------
// The Payment Element needs the PaymentIntent's client secret, so it appears once the order is placed, with every
// method the PaymentIntent offers (STRIPE_PAYMENT_METHODS: cards, bank debits, a bank's page). The shopper pays with
// stripe.confirmPayment; a card or a bank debit is settled on this page (redirect: "if_required"), a redirect
// method leaves for the bank's page and comes back to /shop/?order=<id>. Either way, and on any reload of that
// address, settleOnline() asks the service, which asks Stripe: the page never trusts what the browser says.

const paymentElement = {
  mount() {
    state.stripe = Stripe(state.config.publishableKey);
    show("card-note", "Once your order is placed you pay here, by card or any other way the shop offers "
      + "(a bank debit, your bank's page).");
  },

  async prepare() {
    return {}; // nothing to check before the order: the Payment Element comes with it
  },

  async placed(order) {
    keepInAddress(order.orderId); // a reload, or the way back from a bank's page, finds the order again
    showOrder({ id: order.orderId, status: "pending", paymentStatus: "unpaid", totalAmount: order.totalAmount,
      currency: order.currency });
    offerPayment(order, { paymentStatus: "unpaid", clientSecret: order.clientSecret, nextAction: null, lastError: null });
  },
};

function orderInAddress() {
  return new URLSearchParams(window.location.search).get("order");
}

// The address names the order being paid (and nothing more: Stripe's payment_intent, its client secret and its
// redirect_status are taken off once read, out of the history and of what a shopper might copy).
function keepInAddress(orderId) {
  window.history.replaceState(null, "", returnUrl(orderId));
}

function forgetAddress() {
  if (window.location.search) window.history.replaceState(null, "", window.location.pathname);
}

function returnUrl(orderId) {
  return `${window.location.origin}${window.location.pathname}?order=${encodeURIComponent(orderId)}`;
}

// A decline or a failed step, in the shopper's words, whatever the method (a card, a bank account, a bank's page).
function paymentReason(message) {
  if (!message) return "The payment did not go through.";
  if (/authenticat/i.test(message)) return "The payment was not confirmed at your bank (it failed or was canceled there).";
  if (/^Your (card|bank)/.test(message)) return message;
  if (/insufficient funds/i.test(message)) return "Your bank account did not have enough money for this payment.";
  return `The payment was refused: ${message}`;
}

// The Payment Element for this client secret, mounted in the group Card (made again only for another secret).
function mountPaymentElement(clientSecret) {
  if (state.card && state.elementsSecret === clientSecret) return;
  if (state.card) state.card.destroy();
  state.elements = state.stripe.elements({ clientSecret });
  state.elementsSecret = clientSecret;
  state.card = state.elements.create("payment");
  state.card.on("change", () => show("card-error", "")); // what was wrong is being changed
  state.cardReady = new Promise((resolve) => state.card.on("ready", resolve));
  state.card.mount("#card-element");
}

// The checkout now pays this order only: the Payment Element, Pay now (or Pay again), Cancel order.
function offerPayment(order, payment) {
  session.remember({ orderId: order.orderId, totalAmount: order.totalAmount, currency: order.currency });
  mountPaymentElement(payment.clientSecret);
  show("card-note", "");
  $("order-details").hidden = true;
  $("place-order").hidden = true;
  $("pay-again").hidden = false;
  $("cancel-order").hidden = false;
  $("card-group").hidden = false;
  $("checkout").hidden = false;
  $("order-form").hidden = false;
  const failed = payment.paymentStatus === "failed";
  $("pay-again").textContent = failed ? "Pay again" : "Pay now";
  const bank = payment.nextAction && payment.nextAction.redirectUrl;
  const paying = $("paying-again");
  paying.replaceChildren(`Order ${order.orderId} is placed: choose how to pay, then ${failed ? "Pay again" : "Pay now"}.`);
  if (bank) {
    paying.append(" Your bank is still waiting for you to confirm this payment: ",
      element("a", "continue at your bank", { href: bank }), ", or pay another way.");
  }
  paying.hidden = false;
  if (failed) {
    $("confirmation-message").textContent = "";
    alertAt("confirmation-error", `${paymentReason(payment.lastError)} Nothing was charged. Choose how to pay, then `
      + "Pay again, or cancel the order.");
  } else {
    $("confirmation-message").textContent = "Your order is placed and its products are held for you: pay for it "
      + "under Checkout to confirm it.";
    state.cardReady.then(() => { // once the Element has its size: what to do, its fields and Pay now in view together
      paying.scrollIntoView({ block: "start" });
      state.card.focus();
    });
  }
}

// Pay now / Pay again: stripe.confirmPayment with the Payment Element.
async function payOnline() {
  const order = session.order;
  if (!order || state.busy || !state.elements) return;
  clearMessages();
  setBusy(true);
  try {
    show("order-status", "Paying… If your bank asks you to confirm the payment, do so.");
    const result = await state.stripe.confirmPayment({
      elements: state.elements, confirmParams: { return_url: returnUrl(order.orderId) }, redirect: "if_required",
    });
    show("order-status", "");
    if (result.error && result.error.type === "validation_error") {
      alertAt("card-error", result.error.message); // the Element marks the field too
      return;
    }
    // Paid, processing or declined: what the page shows comes from the service, not from this result.
    const payment = await settleOnline(order.orderId);
    if (result.error && payment && payment.clientSecret && !payment.lastError) {
      alertAt("confirmation-error", `${paymentReason(result.error.message)} Nothing was charged: try again.`);
    }
  } catch (error) {
    alertAt("confirmation-error", shopperMessage(error));
  } finally {
    show("order-status", "");
    setBusy(false);
  }
}

// The order's payment as the service has it, shown in Order confirmation: after confirmPayment, on the way back
// from a bank's page (/shop/?order=<id>&payment_intent=…&redirect_status=…) and on any reload. PATCH /paid makes
// the service ask Stripe (204 paid, 202 processing, 400 not paid); GET …/payment then says why and gives the
// client secret to pay again. `redirect_status` is never read: the shopper's browser could say anything.
// Resolves to GET …/payment's answer while the order can still be paid, else null.
async function settleOnline(orderId) {
  show("confirmation-error", "");
  let busy = false;
  try {
    await api("PATCH", `/api/orders/${orderId}/paid`);
  } catch (error) {
    if (error.status === 404) {
      forgetAddress();
      session.forget();
      alertAt("page-error", "This order is not in your account: sign in with the account that placed it.");
      return null;
    }
    if (error.status === 401) return null; // signed out: the sign-in form is shown
    busy = error.status === 503 || error.status >= 500; // the webhook tells the service meanwhile
  }
  keepInAddress(orderId);
  const order = await refreshOrder(orderId);
  bringIntoView("confirmation");
  if (order.status !== "pending" || order.paymentStatus === "processing") {
    session.forget();
    finishCheckout();
    $("confirmation-message").textContent = order.paymentStatus === "paid"
      ? "Thank you: your payment was received and your order is confirmed."
      : order.paymentStatus === "processing"
        ? "Thank you: your bank has accepted the payment. Your order is confirmed when the money arrives (a bank "
          + "debit can take a few days); My orders shows it."
        : statusText(order);
    await refreshMyOrders();
    return null;
  }
  if (busy) {
    await waitUntilPaid(orderId);
    return null;
  }
  const { data: payment } = await api("GET", `/api/orders/${orderId}/payment`);
  if (!payment.clientSecret) { // settled meanwhile (a webhook): show it as it is now
    await refreshOrder(orderId);
    return null;
  }
  offerPayment({ orderId, totalAmount: order.totalAmount, currency: order.currency }, payment);
  return payment;
}

// --- paying by card: the Stripe emulator's flow ----------------------------------------------------------
// Its Stripe.js cannot confirm a PaymentIntent with card data (it only simulates 3-D Secure there), and its
// card widget is five plain inputs that take digits only. So the page reads what the shopper typed, accepts
// it as people type it (spaces in the number, two- or four-digit years), checks it, and saves the card with a
// SetupIntent before the order is placed; the service then charges the saved card (/api/emulator routes,
// which exist only while the emulator stands in). A 3-D Secure card asks twice: once to save the card, once
// to pay, and the page says so.

const EMULATOR_FIELDS = [
  // the widget's input (by its placeholder), its label, a hint, autocomplete
  ["number", "Card number", "1234 1234 1234 1234", "cc-number"],
  ["exp_month", "Expiry month", "MM", "cc-exp-month"],
  ["exp_year", "Expiry year", "YY", "cc-exp-year"],
  ["cvc", "Security code", "CVC", "cc-csc"],
  ["postal_code", "Card postal code", "ZIP", "postal-code"],
];

function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let digit = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
  }
  return sum % 10 === 0;
}

const emulatorCard = {
  mount() {
    state.stripe = Stripe(state.config.publishableKey); // the emulator's Stripe() must not be called with `new`
    state.card = state.stripe.elements().create("card");
    state.card.mount("#card-element");
    state.cardInputs = {};
    for (const [name, label, hint, autocomplete] of EMULATOR_FIELDS) {
      const input = document.querySelector(`#card-element input[placeholder="${name}"]`);
      // The widget jumps to the next input after 16 characters, which cuts a number typed with spaces in
      // two: people move on with Tab, as in any form.
      input.oninput = null;
      input.id = `card-${name.replace("_", "-")}`;
      input.placeholder = hint;
      input.setAttribute("autocomplete", autocomplete);
      input.setAttribute("inputmode", "numeric");
      input.removeAttribute("size");
      const wrapper = element("label", null, { class: `card-field ${name.replace("_", "-")}` });
      input.replaceWith(wrapper);
      wrapper.append(element("span", label), input);
      state.cardInputs[name] = input;
    }
    show("card-note", "No real card is charged here: the shop runs on a Stripe emulator. Test cards: "
      + "4242 4242 4242 4242 pays; 4000 0025 0000 3155 asks your bank to confirm it is you; "
      + "4000 0000 0000 0341 is declined.");
  },

  // What the shopper typed, as the emulator takes it, or the CardProblem that stops it here.
  read() {
    const typed = Object.fromEntries(Object.entries(state.cardInputs).map(([name, input]) => [name, input.value.trim()]));
    const id = (name) => state.cardInputs[name].id;
    const number = typed.number.replace(/[\s-]/g, "");
    if (!number) throw new CardProblem("Enter your card number.", id("number"));
    if (!/^\d+$/.test(number)) throw new CardProblem("Your card number can only have digits (and spaces).", id("number"));
    if (number.length < 13 || number.length > 19) throw new CardProblem("Your card number is incomplete.", id("number"));
    if (!luhn(number)) throw new CardProblem("Your card number is invalid: check it against your card.", id("number"));
    let month = typed.exp_month;
    let year = typed.exp_year;
    const both = month.match(/^(\d{1,2})\s*\/\s*(\d{2}|\d{4})$/); // "12/34" typed into the month
    if (both && !year) [, month, year] = both;
    if (!/^\d{1,2}$/.test(month) || Number(month) < 1 || Number(month) > 12) {
      throw new CardProblem("Your card's expiry month is invalid: enter it as on the card, 01 to 12.", id("exp_month"));
    }
    if (!/^(\d{2}|\d{4})$/.test(year)) {
      throw new CardProblem("Your card's expiry year is incomplete: enter two digits (34) or four (2034).", id("exp_year"));
    }
    const fullYear = year.length === 2 ? 2000 + Number(year) : Number(year);
    const today = new Date();
    const expired = fullYear < today.getFullYear()
      || (fullYear === today.getFullYear() && Number(month) < today.getMonth() + 1);
    if (expired) throw new CardProblem("Your card has expired: check its expiry date, or use another card.", id("exp_year"));
    if (fullYear > today.getFullYear() + 50) throw new CardProblem("Your card's expiry year is invalid.", id("exp_year"));
    if (!/^\d{3,4}$/.test(typed.cvc)) {
      throw new CardProblem("Your card's security code is incomplete: the three or four digits on the card.", id("cvc"));
    }
    return { number, exp_month: String(Number(month)), exp_year: String(fullYear), cvc: typed.cvc,
      postalCode: typed.postal_code };
  },

  // Checked here, then saved with a SetupIntent: the emulator refuses a card it declines now, before any
  // order holds stock for it. Resolves to the saved card's PaymentMethod id.
  async prepare() {
    const { postalCode, ...card } = emulatorCard.read();
    show("order-status", "Checking your card with your bank… If your bank asks you to confirm it is you, do so.");
    try {
      const setup = await api("POST", "/api/emulator/setup-intents");
      const billing = { name: session.customer ? session.customer.name : undefined };
      if (postalCode) billing.address = { postal_code: postalCode };
      const saved = await state.stripe.confirmCardSetup(setup.data.clientSecret,
        { payment_method: { card, billing_details: billing } });
      if (saved.error) {
        throw new CardProblem(`${providerReason(saved.error.message)} No order was placed: check the card, or use another.`);
      }
      const method = saved.setupIntent.payment_method;
      return { paymentMethodId: typeof method === "string" ? method : method.id };
    } finally {
      show("order-status", "");
    }
  },

  async placed(order, prepared) {
    showOrder({ id: order.orderId, status: "pending", paymentStatus: "unpaid", totalAmount: order.totalAmount,
      currency: order.currency }, "Paying…");
    bringIntoView("confirmation");
    await pay(order, prepared);
  },

  async pay(order, prepared) {
    const attempt = await api("POST", `/api/emulator/orders/${order.orderId}/pay`,
      { body: { paymentMethodId: prepared.paymentMethodId } });
    const payment = attempt.data;
    if (payment.clientSecret) session.remember({ ...order, clientSecret: payment.clientSecret });
    if (payment.status === "requires_action") {
      $("confirmation-message").textContent = "Your bank asks you to confirm it is you once more, now for the "
        + "payment itself: the first time was for saving the card.";
      const authenticated = await state.stripe.confirmCardPayment(payment.clientSecret);
      if (authenticated.error) return { declined: providerReason(authenticated.error.message) };
      // whether it succeeded, PATCH /paid finds out (and records a failure)
    } else if (payment.status !== "succeeded" && payment.status !== "requires_capture") { // held: PAYMENT_CAPTURE
      return { declined: providerReason(payment.error) };
    }
    return confirmWithService(order);
  },
};

function showCardProblem(problem) {
  alertAt("card-error", problem.message, problem.input);
}

// --- catalog and cart ----------------------------------------------------------------------------------

async function loadProducts() {
  const { data } = await api("GET", "/api/products?pageSize=100");
  state.products = data.items;
  const list = $("products");
  list.replaceChildren();
  for (const product of state.products) {
    const item = element("li");
    item.appendChild(element("span", product.name, { class: "name" }));
    const price = element("span", money(product.price));
    item.appendChild(price);
    let select = null;
    if (product.variants.length) {
      const label = element("label", "Variant ");
      select = element("select");
      for (const variant of product.variants) {
        select.appendChild(element("option", `${variant.name} — ${money(variant.price)}`, { value: variant.id }));
      }
      select.addEventListener("change", () => {
        price.textContent = money(product.variants.find((v) => v.id === select.value).price);
      });
      price.textContent = money(product.variants[0].price);
      label.appendChild(select);
      item.appendChild(label);
    }
    const add = element("button", "Add to cart", { type: "button" });
    add.addEventListener("click", () => addToCart(product, select ? select.value : null));
    item.appendChild(add);
    list.appendChild(item);
  }
}

function addToCart(product, variantId) {
  const variant = variantId ? product.variants.find((v) => v.id === variantId) : null;
  const line = state.cart.find((l) => l.productId === product.id && l.variantId === variantId);
  if (line) line.quantity += 1;
  else state.cart.push({
    productId: product.id, variantId, quantity: 1,
    name: variant ? `${product.name} (${variant.name})` : product.name,
    unitPrice: variant ? variant.price : product.price,
  });
  changed();
  renderCart();
}

function chosenMethod() {
  if (!state.cart.length || $("checkout").hidden || $("order-form").hidden) return null;
  return state.methods.find((m) => m.id === $("delivery-method").value) || null;
}

// Shown to the customer only; the service computes the order's total from its own prices.
function renderCart() {
  const lines = $("cart-lines");
  lines.replaceChildren();
  let items = 0;
  for (const line of state.cart) {
    const minor = toMinor(line.unitPrice) * line.quantity;
    items += minor;
    const item = element("li", `${line.quantity} × ${line.name} — ${moneyOfMinor(minor)} `);
    const remove = element("button", "Remove", { type: "button", "aria-label": `Remove ${line.name}` });
    remove.addEventListener("click", () => {
      state.cart.splice(state.cart.indexOf(line), 1);
      changed();
      renderCart();
    });
    item.appendChild(remove);
    lines.appendChild(item);
  }
  const method = chosenMethod();
  $("cart-empty").hidden = state.cart.length > 0;
  $("cart-items-total").textContent = state.cart.length ? moneyOfMinor(items) : "—";
  $("cart-delivery").textContent = method ? `${method.name}: ${money(method.price)}` : "chosen at checkout";
  $("cart-total").textContent = state.cart.length ? moneyOfMinor(items + (method ? toMinor(method.price) : 0)) : "—";
  $("checkout-button").disabled = !state.cart.length;
}

// --- checkout ----------------------------------------------------------------------------------------

function changed() {
  state.idempotencyKey = null; // another cart or address is another order: it gets a key of its own
}

async function loadDeliveryMethods() {
  const country = $("country").value.trim();
  const query = country ? `?country=${encodeURIComponent(country)}` : "";
  show("delivery-error", "");
  try {
    const { data } = await api("GET", `/api/delivery-methods${query}`);
    state.methods = data;
    if (!data.length) show("delivery-error", "Nothing is delivered to this country yet.");
  } catch (error) {
    state.methods = [];
    show("delivery-error", shopperMessage(error));
  }
  const select = $("delivery-method");
  const previous = select.value;
  select.replaceChildren();
  for (const method of state.methods) {
    const cod = method.cashOnDelivery ? "" : " (no cash on delivery)";
    select.appendChild(element("option", `${method.name} — ${money(method.price)}${cod}`, { value: method.id }));
  }
  if (state.methods.some((m) => m.id === previous)) select.value = previous;
  renderCart();
}

function showAccount() {
  const customer = session.customer;
  $("account").hidden = Boolean(customer);
  $("order-form").hidden = !customer;
  $("signed-in").hidden = !customer;
  $("sign-out").hidden = !customer;
  $("signed-in").textContent = customer ? `Signed in as ${customer.email}` : "";
  renderCart();
}

async function signIn(register) {
  show("account-error", "");
  const email = $("email").value.trim();
  const password = $("password").value;
  const name = $("name").value.trim() || email;
  try {
    const { data } = register
      ? await api("POST", "/api/auth/register", { body: { email, password, name } })
      : await api("POST", "/api/auth/login", { body: { email, password } });
    session.signIn({ id: data.customerId, email, name }, data.accessToken);
    showAccount();
    const returning = state.returningTo; // back from a bank's page in a browser that had forgotten the sign-in
    state.returningTo = null;
    if (returning) await settleOnline(returning);
  } catch (error) {
    const field = refusedField(error.errors);
    alertAt("account-error", shopperMessage(error), field && field.input);
  }
}

function signOut() {
  session.signOut();
  forgetAddress();
  for (const id of ["orders", "confirmation"]) $(id).hidden = true; // they were the last customer's
  $("orders-list").replaceChildren();
  payingAgain(false);
  showAccount();
}

function orderBody() {
  const body = {
    customerId: session.customer.id,
    deliveryMethodId: $("delivery-method").value,
    deliveryAddress: {
      street: $("street").value.trim(), city: $("city").value.trim(), state: $("state").value.trim() || undefined,
      zipCode: $("zip").value.trim(), country: $("country").value.trim(),
    },
    // unitPrice is the price the customer saw: the service refuses the order if it has changed since.
    items: state.cart.map((l) => ({ productId: l.productId, variantId: l.variantId, quantity: l.quantity,
      unitPrice: l.unitPrice })),
  };
  const notes = $("notes").value.trim();
  if (notes) body.notes = notes;
  return body;
}

function paymentChoice() {
  return document.querySelector('input[name="payment"]:checked').value;
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["place-order", "pay-again", "cancel-order"]) $(id).disabled = busy;
}

function clearMessages() {
  for (const id of ["page-error", "order-error", "card-error", "confirmation-error"]) show(id, "");
}

async function placeOrder(event) {
  event.preventDefault();
  if (state.busy) return; // a second click while the first is on its way
  clearMessages();
  if (!state.cart.length) {
    alertAt("order-error", "Your cart is empty: add a product before you place an order.");
    return;
  }
  if (!$("delivery-method").value) {
    alertAt("order-error", "Choose a delivery method.", "delivery-method");
    return;
  }
  setBusy(true);
  state.idempotencyKey = state.idempotencyKey || randomKey();
  const key = state.idempotencyKey;
  try {
    if (paymentChoice() === "cash_on_delivery") {
      const placed = await api("POST", "/api/orders", { body: orderBody(), idempotencyKey: key });
      const { data } = await api("GET", placed.location);
      finishCheckout();
      showOrder(data, "Thank you: your order is confirmed. You pay when it is delivered.");
      bringIntoView("confirmation");
      await refreshMyOrders();
      return;
    }
    let prepared;
    try {
      prepared = await cardFlow().prepare(); // before the order: a refused card leaves nothing behind
    } catch (problem) {
      if (problem instanceof CardProblem) {
        showCardProblem(problem);
        return;
      }
      throw problem;
    }
    const { data } = await api("POST", "/api/orders/with-payment", { body: orderBody(), idempotencyKey: key });
    const order = { orderId: data.orderId, clientSecret: data.clientSecret, totalAmount: data.totalAmount,
      currency: data.currency };
    session.remember(order);
    state.cart = [];
    changed();
    renderCart();
    await cardFlow().placed(order, prepared);
  } catch (error) {
    const field = refusedField(error.errors);
    alertAt("order-error", shopperMessage(error), field && field.input); // no stock, a changed price …
  } finally {
    setBusy(false);
  }
}

// The order is placed (and paid, or to be paid on delivery): the checkout closes, the cart is empty.
function finishCheckout() {
  state.cart = [];
  changed();
  payingAgain(false);
  $("checkout").hidden = true;
  renderCart();
}

// After a declined payment the checkout only pays that order again (or cancels it).
function payingAgain(on, orderId) {
  $("order-details").hidden = on;
  $("place-order").hidden = on;
  $("pay-again").hidden = !on;
  $("cancel-order").hidden = !on;
  show("paying-again", on ? `Paying order ${orderId} again: enter a card, then choose Pay again.` : "");
  if (on) {
    $("checkout").hidden = false;
    $("order-form").hidden = false;
  }
}

async function pay(order, prepared) {
  show("confirmation-error", "");
  let outcome;
  try {
    outcome = await cardFlow().pay(order, prepared);
  } catch (error) {
    outcome = { declined: shopperMessage(error) };
  }
  if (outcome && outcome.declined) {
    await refreshOrder(order.orderId).catch(() => null);
    $("confirmation-message").textContent = "";
    payingAgain(true, order.orderId);
    alertAt("confirmation-error", `${outcome.declined} Nothing was charged. Enter another card and choose Pay again, `
      + "or cancel the order.");
    await refreshMyOrders();
    return;
  }
  await waitUntilPaid(order.orderId);
}

async function payAgain() {
  const order = session.order;
  if (!order || state.busy) return;
  clearMessages();
  setBusy(true);
  try {
    let prepared;
    try {
      prepared = await cardFlow().prepare();
    } catch (problem) {
      if (problem instanceof CardProblem) {
        showCardProblem(problem);
        return;
      }
      throw problem;
    }
    show("confirmation-error", "");
    $("confirmation-message").textContent = "Paying…";
    bringIntoView("confirmation");
    await pay(order, prepared);
  } catch (error) {
    alertAt("confirmation-error", shopperMessage(error));
  } finally {
    setBusy(false);
  }
}

async function cancelOrder() {
  const order = session.order;
  if (!order || state.busy) return;
  clearMessages();
  setBusy(true);
  try {
    const { data } = await api("POST", `/api/orders/${order.orderId}/cancel`);
    session.forget();
    finishCheckout();
    showOrder(data, "Your order is canceled: nothing was charged, and its products are back on sale.");
    bringIntoView("confirmation");
    await refreshMyOrders();
  } catch (error) {
    alertAt("confirmation-error", shopperMessage(error));
  } finally {
    setBusy(false);
  }
}

// --- the order afterwards ------------------------------------------------------------------------------

function itemsList(order) {
  const list = element("ul");
  for (const item of order.items || []) {
    list.appendChild(element("li", `${item.quantity} × ${item.name} — ${money(item.lineTotal, order.currency)}`));
  }
  return list;
}

function showOrder(order, message) {
  $("confirmation").hidden = false;
  $("confirmation-id").textContent = order.id;
  $("confirmation-status").textContent = statusText(order);
  $("confirmation-status").className = order.paymentStatus === "paid" ? "paid" : "";
  const detailed = Array.isArray(order.items);
  for (const node of document.querySelectorAll("#confirmation .order-detail")) node.hidden = !detailed;
  if (detailed) {
    $("confirmation-items").replaceChildren(itemsList(order));
    $("confirmation-delivery").textContent = money(order.deliveryPrice, order.currency);
  }
  $("confirmation-total").textContent = money(order.totalAmount, order.currency);
  if (message !== undefined) $("confirmation-message").textContent = message;
  $("new-order").hidden = order.status === "pending";
}

async function refreshOrder(orderId) {
  const { data } = await api("GET", `/api/orders/${orderId}`);
  showOrder(data);
  return data;
}

// After paying (or after a reload) the order is polled until the service has it paid: PATCH /paid or the
// webhook, whichever comes first.
async function waitUntilPaid(orderId, seconds = 120) {
  $("confirmation-message").textContent = "Waiting for the payment to be confirmed…";
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    let order;
    try {
      order = await refreshOrder(orderId);
    } catch (error) {
      alertAt("confirmation-error", shopperMessage(error));
      return;
    }
    if (order.paymentStatus === "paid" || order.status !== "pending") {
      session.forget();
      finishCheckout();
      $("confirmation-message").textContent = order.paymentStatus === "paid"
        ? "Thank you: your payment was received and your order is confirmed." : statusText(order);
      await refreshMyOrders();
      return;
    }
    if (Date.now() > deadline) {
      $("confirmation-message").textContent = "The payment is not confirmed yet: look at My orders in a while.";
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function orderEntry(order) {
  const item = element("li");
  const heading = element("h3", "Order of ");
  const placed = new Date(order.createdAt);
  heading.appendChild(element("time", placed.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }),
    { datetime: order.createdAt }));
  item.appendChild(heading);
  item.appendChild(element("p", statusText(order)));
  item.appendChild(itemsList(order));
  item.appendChild(element("p", `Delivery ${money(order.deliveryPrice, order.currency)}, total `
    + `${money(order.totalAmount, order.currency)}`));
  item.appendChild(element("p", order.trackingNumber
    ? `Tracking number: ${order.trackingNumber}${order.carrier ? ` (${order.carrier})` : ""}`
    : "Tracking number: none yet (it comes when the order ships)"));
  item.appendChild(element("p", `Order number ${order.id}`, { class: "note" }));
  return item;
}

// Loads the customer's orders into My orders, if it is open.
async function refreshMyOrders() {
  if ($("orders").hidden) return;
  const list = $("orders-list");
  if (!session.token) {
    list.replaceChildren();
    $("orders-note").textContent = "Sign in to see your orders.";
    return;
  }
  try {
    const { data } = await api("GET", "/api/orders?pageSize=100");
    list.replaceChildren(...data.items.map(orderEntry));
    $("orders-note").textContent = data.items.length ? "" : "No orders yet.";
  } catch (error) {
    $("orders-note").textContent = shopperMessage(error);
  }
}

async function showMyOrders() {
  $("orders").hidden = false;
  $("orders-note").textContent = "Loading your orders…";
  await refreshMyOrders();
  if (!session.token) $("checkout").hidden = false; // the sign-in form lives there
  bringIntoView("orders", "orders-title");
}

// --- start ---------------------------------------------------------------------------------------------

async function start() {
  $("checkout-button").addEventListener("click", () => {
    $("checkout").hidden = false;
    renderCart();
    bringIntoView("checkout", "checkout-title");
  });
  $("sign-in").addEventListener("click", () => signIn(false));
  $("create-account").addEventListener("click", () => signIn(true));
  $("sign-out").addEventListener("click", signOut);
  $("order-form").addEventListener("submit", placeOrder);
  $("order-form").addEventListener("input", changed);
  $("country").addEventListener("change", loadDeliveryMethods);
  $("delivery-method").addEventListener("change", renderCart);
  for (const radio of document.querySelectorAll('input[name="payment"]')) {
    radio.addEventListener("change", () => { $("card-group").hidden = paymentChoice() !== "online"; });
  }
  $("pay-again").addEventListener("click", () => (usesEmulator() ? payAgain() : payOnline()));
  $("cancel-order").addEventListener("click", cancelOrder);
  $("new-order").addEventListener("click", () => {
    $("confirmation").hidden = true;
    forgetAddress();
    bringIntoView("products-title", "products-title");
  });
  $("my-orders-button").addEventListener("click", showMyOrders);
  showAccount();
  try {
    state.config = (await api("GET", "/api/config")).data;
    await Promise.all([loadProducts(), loadDeliveryMethods(), loadStripe()]);
    cardFlow().mount();
  } catch (error) {
    alertAt("page-error", `The shop could not be loaded: ${shopperMessage(error)}`);
    return;
  }
  document.body.dataset.ready = "true"; // for tests and for people: the page has loaded what it needs
  if (!usesEmulator()) {
    // Back from a bank's page, or a reload while paying: the order in the address (or the one being paid).
    const orderId = orderInAddress() || (session.order && session.order.orderId);
    if (orderId) keepInAddress(orderId);
    if (orderId && session.token) {
      setBusy(true);
      try {
        await settleOnline(orderId);
      } catch (error) {
        alertAt("confirmation-error", shopperMessage(error));
      } finally {
        setBusy(false);
      }
    } else if (orderId) {
      state.returningTo = orderId;
      $("checkout").hidden = false;
      alertAt("account-error", "Sign in to see your order and its payment.", "email");
    }
    return;
  }
  const pending = session.order; // a reload while an order was being paid
  if (pending && session.token) {
    showOrder({ id: pending.orderId, status: "pending", paymentStatus: "unpaid", totalAmount: pending.totalAmount,
      currency: pending.currency });
    payingAgain(true, pending.orderId);
    await waitUntilPaid(pending.orderId);
  }
}

document.addEventListener("DOMContentLoaded", start);
