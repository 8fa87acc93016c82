import type { FastifyInstance } from 'fastify';

/** One operation of the app's OpenAPI document, as the generated route tests walk them. */
export interface DocumentedOperation {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The OpenAPI path, e.g. /api/v1/portal/outlets/{id}. */
  path: string;
  pathParams: string[];
  /** Security requirements; an empty list marks a public operation. */
  security: Array<Record<string, string[]>> | undefined;
  hasBody: boolean;
  /** The portal permission the operation requires (x-permission), when it declares one. */
  permission: string | undefined;
  requestBodySchema: unknown;
}

interface OperationObject {
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name: string }>;
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  'x-permission'?: string;
}

/** Every operation of the app's OpenAPI document (the list new routes join by themselves). */
export function documentedOperations(app: FastifyInstance): DocumentedOperation[] {
  const doc = app.swagger() as { paths?: Record<string, Record<string, OperationObject>> };
  const operations: DocumentedOperation[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      operations.push({
        method: method.toUpperCase() as DocumentedOperation['method'],
        path,
        pathParams: (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name),
        security: op.security,
        hasBody: op.requestBody !== undefined,
        permission: op['x-permission'],
        requestBodySchema: op.requestBody?.content?.['application/json']?.schema,
      });
    }
  }
  return operations;
}

/** The operation's path with each {param} replaced by the value `valueFor` gives for it. */
export function fillPath(path: string, valueFor: (param: string, segmentBefore: string) => string): string {
  const segments = path.split('/');
  return segments
    .map((segment, i) => {
      const match = /^\{(.+)\}$/.exec(segment);
      return match?.[1] ? encodeURIComponent(valueFor(match[1], segments[i - 1] ?? '')) : segment;
    })
    .join('/');
}
