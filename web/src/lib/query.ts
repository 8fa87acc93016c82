import { QueryClient, type QueryKey, useMutation, useQueryClient } from '@tanstack/react-query';
import { useToast } from '../ui/Toasts';
import { ApiError } from './api';

/** A query client that refetches on every visit (showing what it had meanwhile) and does not retry 4xx. */
export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 0,
        refetchOnWindowFocus: false,
        retry: (count, error) => {
          if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
          return count < 2;
        },
      },
    },
  });
}

/**
 * A mutation whose failure shows the API's message in a toast, and whose success invalidates the
 * given queries and optionally says so.
 */
export function useAction<Input, Output>(
  fn: (input: Input) => Promise<Output>,
  options: {
    invalidate?: QueryKey[];
    success?: string | ((output: Output) => string);
    onSuccess?: (output: Output, input: Input) => void;
  } = {},
) {
  const toast = useToast();
  const client = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onError: (error) => toast.error(error),
    onSuccess: async (output, input) => {
      for (const key of options.invalidate ?? []) await client.invalidateQueries({ queryKey: key });
      const message = typeof options.success === 'function' ? options.success(output) : options.success;
      if (message) toast.success(message);
      options.onSuccess?.(output, input);
    },
  });
}
