// Verifies one webhook request as docs/webhooks.md's Node receiver does: reads
// {"secret", "headers", "body"} on stdin, prints the verified event, exits 1 if refused.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, headers, body } = JSON.parse(input);
try {
  const event = new Webhook(secret).verify(body, headers);
  process.stdout.write(JSON.stringify(event));
} catch (error) {
  process.stderr.write(String(error));
  process.exit(1);
}
