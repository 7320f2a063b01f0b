// A stand-in for Stripe.js v3 (https://js.stripe.com/v3/) in the storefront's browser tests, where Stripe's own
// cannot be loaded (no internet) and localstripe's has no Payment Element. It implements only what the storefront
// uses, as Stripe documents it (docs.stripe.com/js):
//
//   Stripe(publishableKey)                      -> stripe
//   stripe.elements({clientSecret})             -> elements; elements.create("payment") -> the Payment Element
//   element.mount(selector | node), element.on("change" | "ready", handler), element.focus(), element.destroy()
//   elements.submit()                           -> {} or {error} (the fields are checked)
//   stripe.confirmPayment({elements, confirmParams: {return_url}, redirect?})
//       -> {error} for an immediate failure (a field the customer must fix, a declined card); otherwise it leaves the
//          page: to the bank's page for a redirect method (`next_action.redirect_to_url`), or to return_url with
//          `payment_intent`, `payment_intent_client_secret` and `redirect_status` - unless `redirect: "if_required"`,
//          which resolves to {paymentIntent} for a method that needs no redirect
//   stripe.retrievePaymentIntent(clientSecret)  -> {paymentIntent} or {error}
//
// A card that asks for 3-D Secure (`next_action.use_stripe_sdk`) gets the issuer's prompt in a modal over the page,
// as Stripe.js shows it, with the buttons of Stripe's test page (`Complete authentication`, `Fail authentication`);
// the answer goes to the emulator's `_authenticate`, which stands for what the issuer tells Stripe.
//
// As in Stripe.js, what the customer types lives in a cross-origin iframe (elements-inner-payment.html, served from
// this script's origin) that sends it to the API itself; the page never sees a card number. Both talk to
// https://api.stripe.com/v1 as Stripe.js does: the publishable key and the client secret as form fields, no secret
// key. The tests route js.stripe.com to these files and api.stripe.com to the real-shaped Stripe
// (tests/support/stripe_js.py), so the page runs under the service's own Content-Security-Policy.
(function () {
  "use strict";
  const ORIGIN = new URL(document.currentScript.src).origin;
  const API = "https://api.stripe.com/v1";
  const FRAME = `${ORIGIN}/v3/elements-inner-payment.html`;

  class IntegrationError extends Error {
    constructor(message) {
      super(message);
      this.name = "IntegrationError";
    }
  }

  // Stripe's form encoding: {a: {b: 1}} -> a[b]=1
  function formEncode(value, prefix, out = new URLSearchParams()) {
    if (value === undefined || value === null) return out;
    if (typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) formEncode(inner, prefix ? `${prefix}[${key}]` : key, out);
    } else out.append(prefix, String(value));
    return out;
  }

  function intentId(clientSecret) {
    const match = /^(pi_[A-Za-z0-9]+)_secret_/.exec(clientSecret || "");
    if (!match) throw new IntegrationError("Invalid value for clientSecret: it should be a PaymentIntent's client secret.");
    return match[1];
  }

  async function api(method, path, params) {
    const body = formEncode(params).toString();
    let response;
    try {
      response = method === "GET" ? await fetch(`${API}${path}?${body}`)
        : await fetch(`${API}${path}`, { method, body, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    } catch (_) {
      return { error: { type: "api_connection_error", message: "We could not reach Stripe. Check your connection." } };
    }
    const json = await response.json().catch(() => ({}));
    return response.ok ? { paymentIntent: json } : { error: json.error || { type: "api_error", message: "Stripe failed." } };
  }

  class PaymentElement {
    constructor(elements, options) {
      this.elements = elements;
      this.options = options || {};
      this.handlers = {};
      this.frame = null;
      this.pending = new Map(); // request id -> resolve
      this.nextRequest = 1;
      this.ready = null;
      this.onMessage = (event) => this.received(event);
    }

    mount(target) {
      const node = typeof target === "string" ? document.querySelector(target) : target;
      if (!node) throw new IntegrationError(`The selector you specified (${target}) applies to no DOM elements.`);
      if (this.frame) throw new IntegrationError("This Element is already mounted.");
      const frame = document.createElement("iframe");
      frame.name = `__privateStripeFrame${Math.floor(Math.random() * 1e6)}`;
      frame.title = "Secure payment input frame";
      frame.setAttribute("allow", "payment *");
      frame.setAttribute("frameborder", "0");
      frame.style.border = "0";
      frame.style.width = "100%";
      frame.style.height = "10rem";
      frame.src = FRAME;
      this.frame = frame;
      window.addEventListener("message", this.onMessage);
      this.ready = new Promise((resolve) => { this.markReady = resolve; });
      frame.addEventListener("load", () => this.post({
        type: "init", key: this.elements.stripe.key, clientSecret: this.elements.clientSecret,
      }));
      node.replaceChildren(frame);
    }

    post(message) {
      this.frame.contentWindow.postMessage(message, ORIGIN);
    }

    ask(message) {
      return this.ready.then(() => new Promise((resolve) => {
        const id = this.nextRequest++;
        this.pending.set(id, resolve);
        this.post({ ...message, id });
      }));
    }

    received(event) {
      if (!this.frame || event.source !== this.frame.contentWindow || event.origin !== ORIGIN) return;
      const message = event.data || {};
      if (message.type === "resize") this.frame.style.height = `${message.height}px`;
      else if (message.type === "ready") {
        this.markReady();
        this.emit("ready", { elementType: "payment" });
      } else if (message.type === "change") {
        this.emit("change", { elementType: "payment", complete: message.complete, empty: message.empty,
          collapsed: false, value: { type: message.method } });
      } else if (message.type === "reply" && this.pending.has(message.id)) {
        this.pending.get(message.id)(message.result);
        this.pending.delete(message.id);
      }
    }

    emit(name, event) {
      for (const handler of this.handlers[name] || []) handler(event);
    }

    on(name, handler) {
      (this.handlers[name] = this.handlers[name] || []).push(handler);
      return this;
    }

    off(name, handler) {
      this.handlers[name] = (this.handlers[name] || []).filter((h) => h !== handler);
      return this;
    }

    focus() {
      if (this.frame) this.frame.focus();
    }

    unmount() {
      if (this.frame) this.frame.remove();
      window.removeEventListener("message", this.onMessage);
      this.frame = null;
    }

    destroy() {
      this.unmount();
      this.elements.element = null;
    }
  }

  class Elements {
    constructor(stripe, options) {
      if (!options || !options.clientSecret) {
        throw new IntegrationError("This stand-in supports elements({clientSecret}) only: the PaymentIntent comes first.");
      }
      intentId(options.clientSecret);
      this.stripe = stripe;
      this.clientSecret = options.clientSecret;
      this.element = null;
    }

    create(type, options) {
      if (type !== "payment") throw new IntegrationError(`This stand-in has the Payment Element only, not "${type}".`);
      if (this.element) throw new IntegrationError("Can only create one Element of type payment.");
      this.element = new PaymentElement(this, options);
      return this.element;
    }

    getElement(type) {
      return type === "payment" ? this.element : null;
    }

    async submit() {
      if (!this.element || !this.element.frame) throw new IntegrationError("elements.submit(): no mounted Payment Element.");
      const checked = await this.element.ask({ type: "check" });
      return checked.error ? { error: checked.error } : {};
    }
  }

  // The card issuer's 3-D Secure prompt, over the page; resolves to the PaymentIntent once answered.
  function authenticate(key, clientSecret) {
    return new Promise((resolve) => {
      const veil = document.createElement("div");
      veil.setAttribute("role", "dialog");
      veil.setAttribute("aria-modal", "true");
      veil.setAttribute("aria-label", "3D Secure authentication");
      Object.assign(veil.style, { position: "fixed", inset: "0", display: "flex", alignItems: "center",
        justifyContent: "center", background: "rgba(0, 0, 0, 0.4)", zIndex: "2147483647" });
      const box = document.createElement("div");
      Object.assign(box.style, { background: "#fff", padding: "1.5rem", borderRadius: "6px", maxWidth: "24rem" });
      const title = document.createElement("h2");
      title.textContent = "Test 3D Secure authentication";
      const text = document.createElement("p");
      text.textContent = "Your card's bank asks you to confirm this payment.";
      box.append(title, text);
      for (const [label, success] of [["Complete authentication", true], ["Fail authentication", false]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = label;
        button.addEventListener("click", async () => {
          veil.remove();
          resolve(await api("POST", `/payment_intents/${intentId(clientSecret)}/_authenticate`,
            { key, client_secret: clientSecret, success }));
        });
        box.append(button, " ");
      }
      veil.append(box);
      document.body.append(veil);
      box.querySelector("button").focus();
    });
  }

  function leaveFor(url) {
    window.location.assign(url);
    return new Promise(() => {}); // the page is going away: the promise never settles, as with Stripe.js
  }

  function Stripe(key) {
    if (!(typeof key === "string" && key.startsWith("pk_"))) {
      throw new IntegrationError("Invalid API Key provided: Stripe() needs a publishable key (pk_…).");
    }
    return {
      key,
      elements(options) {
        return new Elements(this, options);
      },

      async retrievePaymentIntent(clientSecret) {
        return api("GET", `/payment_intents/${intentId(clientSecret)}`, { key, client_secret: clientSecret });
      },

      async confirmPayment(options) {
        const { elements, confirmParams = {}, redirect = "always" } = options || {};
        if (!(elements instanceof Elements) || !elements.element || !elements.element.frame) {
          throw new IntegrationError("stripe.confirmPayment(): `elements` must hold a mounted Payment Element.");
        }
        if (!confirmParams.return_url && redirect !== "if_required") {
          throw new IntegrationError("stripe.confirmPayment(): the `confirmParams.return_url` argument is required "
            + "unless passing `redirect: 'if_required'`");
        }
        const result = await elements.element.ask({ type: "confirm", confirmParams });
        if (result.error) return { error: result.error };
        let intent = result.paymentIntent;
        if (intent.status === "requires_action" && intent.next_action && intent.next_action.type === "use_stripe_sdk") {
          const authenticated = await authenticate(key, elements.clientSecret);
          if (authenticated.error) return { error: authenticated.error };
          intent = authenticated.paymentIntent;
        }
        const action = intent.next_action;
        if (intent.status === "requires_action" && action && action.type === "redirect_to_url") {
          return leaveFor(action.redirect_to_url.url);
        }
        if (intent.status === "requires_action") {
          return { error: { type: "invalid_request_error", message: `This stand-in cannot handle ${action && action.type}.` } };
        }
        if (intent.status === "requires_payment_method") {
          return { error: intent.last_payment_error || { type: "invalid_request_error", message: "The payment failed." } };
        }
        if (redirect === "if_required") return { paymentIntent: intent };
        const back = new URL(confirmParams.return_url);
        back.searchParams.set("payment_intent", intent.id);
        back.searchParams.set("payment_intent_client_secret", elements.clientSecret);
        back.searchParams.set("redirect_status", "succeeded");
        return leaveFor(back.toString());
      },
    };
  }

  window.Stripe = Stripe;
})();
