// Drives fal's official JS client (@fal-ai/client), unmodified, through the gateway's
// /fal/proxy. Inputs come from the environment; results are printed as one JSON object.
import { fal } from "@fal-ai/client";

const { GATEWAY_URL, FAL_KEY, INPUTS, PNG_BASE64 } = process.env;
const inputs = JSON.parse(INPUTS);

fal.config({
  credentials: FAL_KEY,
  proxyUrl: { url: `${GATEWAY_URL}/fal/proxy`, when: "always" },
});

const results = {};
for (const [endpoint, input] of Object.entries(inputs)) {
  for (const mode of ["polling", "streaming"]) {
    const updates = [];
    const result = await fal.subscribe(endpoint, {
      input,
      mode,
      logs: true,
      pollInterval: 100,
      onQueueUpdate: (update) => updates.push(update.status),
    });
    results[`${endpoint}|${mode}`] = {
      requestId: result.requestId,
      image: result.data.images[0],
      updates,
    };
  }
}

const uploaded = await fal.storage.upload(
  new Blob([Buffer.from(PNG_BASE64, "base64")], { type: "image/png" }),
);
const edited = await fal.subscribe("fal-ai/flux-kontext-lora", {
  input: { prompt: "an edit of an uploaded file", image_url: uploaded },
});
results.upload = { url: uploaded, image: edited.data.images[0] };

console.log(JSON.stringify(results));
