import { z } from 'zod';

/** Event types an endpoint receives; empty = all. */
export const WebhookEventTypes = z
  .array(z.string().min(1).max(100))
  .max(50)
  .describe('Event types to receive; empty = all');

/** Body of "add an endpoint" (portal and admin API). */
export const CreateWebhookBody = z.strictObject({
  url: z.string().min(1).max(2048),
  eventTypes: WebhookEventTypes.optional(),
  description: z.string().max(500).optional(),
});

/** Body of "change an endpoint" (portal and admin API). */
export const UpdateWebhookBody = z.strictObject({
  url: z.string().min(1).max(2048).optional(),
  eventTypes: WebhookEventTypes.optional(),
  enabled: z.boolean().optional(),
  description: z.string().max(500).optional(),
});
