// The reference storefront: the seed's Order Creation Flow against the orders-service API and Stripe.js.
// Plain JavaScript, no build step and no framework, so that any frontend developer can read it top to bottom.
//
//   1. GET /api/config                 -> the publishable key, the currency, where Stripe.js lives
//   2. GET /api/products, a cart kept in the page, GET /api/delivery-methods?country=
//   3. POST /api/auth/login or /register -> a bearer token (kept in sessionStorage)
//   4. POST /api/orders (cash on delivery: 204 + Location) or /api/orders/with-payment (a client secret),
//      always with an Idempotency-Key: a double click or a retried request places one order
//   5. pay: stripe.confirmCardPayment(clientSecret, {payment_method: {card}}), then PATCH /api/orders/{id}/paid
//   6. the confirmation, and later "My orders" with each order's status and tracking number
"use strict";

// The API's base URL: this page is served by the service itself. A page on another origin puts the service's
// URL here, and that origin into the service's CORS_ORIGINS.
const API_BASE = "";
const STRIPE_JS = "https://js.stripe.com/v3/";
const state = {
  config: null,        // GET /api/config
  stripe: null,        // Stripe(publishableKey)
  card: null,          // the card Element
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
  signOut() { sessionStorage.removeItem("token"); sessionStorage.removeItem("customer"); },
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

function money(amount, currency) {
  const code = currency || (state.config && state.config.currency) || "USD";
  return new Intl.NumberFormat(undefined, { style: "currency", currency: code }).format(amount);
}

function randomKey() {
  // crypto.randomUUID needs a secure context; getRandomValues works on any http page (a LAN address too).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the API -----------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    // The service's error body: {code, status, message, errors?}; the field reasons are worth showing.
    let message = (body && body.message) || `The service answered ${status}`;
    if (body && body.errors) message += ": " + describeErrors(body.errors);
    super(message);
    this.status = status;
  }
}

function describeErrors(errors, prefix = "") {
  if (Array.isArray(errors)) return errors.join(" ");
  return Object.entries(errors)
    .map(([field, reason]) => typeof reason === "object" && !Array.isArray(reason)
      ? describeErrors(reason, `${prefix}${field}.`) : `${prefix}${field}: ${[].concat(reason).join(" ")}`)
    .join("; ");
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

// --- messages ------------------------------------------------------------------------------------------

function show(id, message) {
  const node = $(id);
  node.textContent = message || "";
  node.hidden = !message;
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

function mountCard() {
  if (state.card) return;
  state.stripe = Stripe(state.config.publishableKey); // localstripe's Stripe() must not be called with `new`
  state.card = state.stripe.elements().create("card");
  state.card.mount("#card-element");
}

// Pays the order with the card; resolves to an error message, or null once PATCH /paid has confirmed it.
async function payByCard(order) {
  let result;
  if (usesEmulator()) {
    result = await payWithEmulator(order);
  } else {
    // Stripe's own flow, exactly as the seed shows it.
    const customer = session.customer;
    result = await state.stripe.confirmCardPayment(order.clientSecret, {
      payment_method: { card: state.card, billing_details: { name: customer ? customer.name : undefined } },
    });
  }
  if (result.error) return result.error.message || "The payment failed";
  // The service asks Stripe, never the page, whether the order is paid.
  try {
    await api("PATCH", `/api/orders/${order.orderId}/paid`);
  } catch (error) {
    if (error.status === 503) return null; // Stripe is busy: the webhook confirms the order; we poll
    if (/already been marked as paid/.test(error.message)) return null;
    return error.message;
  }
  return null;
}

// localstripe's Stripe.js cannot confirm a PaymentIntent with card data (docs/operations.md, "The Stripe
// emulator"): the card is saved with a SetupIntent, the service confirms the order's payment with it, and
// a 3-D Secure card then needs confirmCardPayment. These /api/emulator routes exist only while the
// emulator is in use.
async function payWithEmulator(order) {
  const setup = await api("POST", "/api/emulator/setup-intents");
  const saved = await state.stripe.confirmCardSetup(setup.data.clientSecret, { payment_method: { card: state.card } });
  if (saved.error) return { error: saved.error };
  const paymentMethod = saved.setupIntent.payment_method;
  const attempt = await api("POST", `/api/emulator/orders/${order.orderId}/pay`,
    { body: { paymentMethodId: typeof paymentMethod === "string" ? paymentMethod : paymentMethod.id } });
  const payment = attempt.data;
  if (payment.clientSecret) session.remember({ ...order, clientSecret: payment.clientSecret });
  if (payment.status === "requires_action") {
    const authenticated = await state.stripe.confirmCardPayment(payment.clientSecret);
    return authenticated.error ? authenticated : {}; // PATCH /paid says whether 3-D Secure succeeded
  }
  if (payment.status !== "succeeded") return { error: { message: payment.error || `The payment is ${payment.status}` } };
  return {};
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

function cartTotal() {
  const method = state.methods.find((m) => m.id === $("delivery-method").value);
  // Shown to the customer only; the service computes the order's total from its own prices.
  const items = state.cart.reduce((sum, l) => sum + l.unitPrice * l.quantity, 0);
  return items + (method && !$("checkout").hidden ? method.price : 0);
}

function renderCart() {
  const lines = $("cart-lines");
  lines.replaceChildren();
  for (const line of state.cart) {
    const item = element("li", `${line.quantity} × ${line.name} — ${money(line.unitPrice * line.quantity)} `);
    const remove = element("button", "Remove", { type: "button", "aria-label": `Remove ${line.name}` });
    remove.addEventListener("click", () => {
      state.cart.splice(state.cart.indexOf(line), 1);
      changed();
      renderCart();
    });
    item.appendChild(remove);
    lines.appendChild(item);
  }
  $("cart-total").textContent = state.cart.length ? money(cartTotal()) : "—";
  $("checkout-button").disabled = !state.cart.length;
}

// --- checkout ----------------------------------------------------------------------------------------

function changed() {
  state.idempotencyKey = null; // another cart or address is another order: it gets a key of its own
}

async function loadDeliveryMethods() {
  const country = $("country").value.trim();
  const query = country ? `?country=${encodeURIComponent(country)}` : "";
  try {
    const { data } = await api("GET", `/api/delivery-methods${query}`);
    state.methods = data;
  } catch (error) {
    state.methods = [];
    show("page-error", error.message);
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
  } catch (error) {
    show("account-error", error.message);
  }
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

async function placeOrder(event) {
  event.preventDefault();
  if (state.busy) return; // a second click while the first is on its way
  state.busy = true;
  $("place-order").disabled = true;
  show("page-error", "");
  state.idempotencyKey = state.idempotencyKey || randomKey();
  const key = state.idempotencyKey;
  try {
    if (paymentChoice() === "cash_on_delivery") {
      const placed = await api("POST", "/api/orders", { body: orderBody(), idempotencyKey: key });
      const { data } = await api("GET", placed.location);
      finishCheckout();
      showOrder(data, "Thank you: your order is confirmed and will be paid on delivery.");
    } else {
      const { data } = await api("POST", "/api/orders/with-payment", { body: orderBody(), idempotencyKey: key });
      const order = { orderId: data.orderId, clientSecret: data.clientSecret, totalAmount: data.totalAmount,
        currency: data.currency };
      session.remember(order);
      finishCheckout();
      showOrder({ id: order.orderId, status: "pending", totalAmount: order.totalAmount, currency: order.currency },
        "Paying…");
      await pay(order);
    }
  } catch (error) {
    show("page-error", error.message); // insufficient stock, a changed price, a bad address …
  } finally {
    state.busy = false;
    $("place-order").disabled = false;
  }
}

function finishCheckout() {
  state.cart = [];
  changed();
  renderCart();
}

async function pay(order) {
  show("confirmation-error", "");
  $("pay-again").hidden = true;
  let failure;
  try {
    failure = await payByCard(order);
  } catch (error) {
    failure = error.message;
  }
  if (failure) {
    show("confirmation-error", failure);
    $("confirmation-message").textContent = "The payment did not go through: enter another card and pay again.";
    $("pay-again").hidden = false;
    $("checkout").hidden = false; // the card field lives there
    $("order-form").hidden = false;
    $("place-order").hidden = true; // this order is paid again, not placed again
    await refreshOrder(order.orderId);
    return;
  }
  await waitUntilPaid(order.orderId);
}

async function payAgain() {
  const order = session.order;
  if (!order || state.busy) return;
  state.busy = true;
  $("pay-again").disabled = true;
  try {
    await pay(order);
  } finally {
    state.busy = false;
    $("pay-again").disabled = false;
  }
}

// --- the order afterwards ------------------------------------------------------------------------------

function showOrder(order, message) {
  $("confirmation").hidden = false;
  $("confirmation-id").textContent = order.id;
  $("confirmation-status").textContent = order.paymentStatus ? `${order.status} (${order.paymentStatus})` : order.status;
  $("confirmation-status").className = order.paymentStatus === "paid" ? "paid" : "";
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
      show("confirmation-error", error.message);
      return;
    }
    if (order.paymentStatus === "paid" || order.status !== "pending") {
      session.forget();
      $("confirmation-message").textContent = order.paymentStatus === "paid"
        ? "Thank you: your payment was received and your order is confirmed." : `The order is ${order.status}.`;
      $("pay-again").hidden = true;
      $("place-order").hidden = false;
      $("checkout").hidden = true;
      return;
    }
    if (Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function showMyOrders() {
  $("orders").hidden = false;
  const list = $("orders-list");
  list.replaceChildren();
  if (!session.token) {
    list.appendChild(element("li", "Sign in to see your orders."));
    $("checkout").hidden = false;
    return;
  }
  try {
    const { data } = await api("GET", "/api/orders?pageSize=100");
    if (!data.items.length) list.appendChild(element("li", "No orders yet."));
    for (const order of data.items) {
      const tracking = order.trackingNumber
        ? `tracking ${order.trackingNumber}${order.carrier ? ` (${order.carrier})` : ""}` : "no tracking number yet";
      list.appendChild(element("li",
        `Order ${order.id}: ${order.status}, ${order.paymentStatus}, ${money(order.totalAmount, order.currency)}, ${tracking}`));
    }
  } catch (error) {
    list.appendChild(element("li", error.message));
  }
}

// --- start ---------------------------------------------------------------------------------------------

async function start() {
  $("checkout-button").addEventListener("click", () => {
    $("checkout").hidden = false;
    renderCart();
    $("checkout").scrollIntoView();
  });
  $("sign-in").addEventListener("click", () => signIn(false));
  $("create-account").addEventListener("click", () => signIn(true));
  $("sign-out").addEventListener("click", () => { session.signOut(); showAccount(); });
  $("order-form").addEventListener("submit", placeOrder);
  $("order-form").addEventListener("input", changed);
  $("country").addEventListener("change", loadDeliveryMethods);
  $("delivery-method").addEventListener("change", renderCart);
  for (const radio of document.querySelectorAll('input[name="payment"]')) {
    radio.addEventListener("change", () => { $("card-group").hidden = paymentChoice() !== "online"; });
  }
  $("pay-again").addEventListener("click", payAgain);
  $("new-order").addEventListener("click", () => { $("confirmation").hidden = true; });
  $("my-orders-button").addEventListener("click", showMyOrders);
  showAccount();
  try {
    state.config = (await api("GET", "/api/config")).data;
    await Promise.all([loadProducts(), loadDeliveryMethods(), loadStripe()]);
    mountCard();
  } catch (error) {
    show("page-error", error.message);
    return;
  }
  document.body.dataset.ready = "true"; // for tests and for people: the page has loaded what it needs
  const pending = session.order; // a reload while an order was being paid
  if (pending && session.token) {
    $("checkout").hidden = false;
    $("place-order").hidden = true;
    showOrder({ id: pending.orderId, status: "pending", totalAmount: pending.totalAmount, currency: pending.currency });
    $("pay-again").hidden = false;
    await waitUntilPaid(pending.orderId);
  }
}

document.addEventListener("DOMContentLoaded", start);
