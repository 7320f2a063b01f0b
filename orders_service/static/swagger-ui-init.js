// Starts Swagger UI on /api/docs from the data attributes its page carries (no inline script: see the CSP).
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = { url: container.dataset.specUrl, dom_id: "#swagger-ui-container" };
  var overrides = JSON.parse(container.dataset.config || "{}");
  for (var name in overrides) { config[name] = overrides[name]; }
  window.ui = SwaggerUIBundle(config);
});
