// What the Mini App reads from Telegram: the signed launch data (initData) and the theme. The
// Telegram client injects window.Telegram.WebApp when it loads telegram-web-app.js; we load no outside
// script, so we read that object when present and otherwise the launch parameters Telegram also puts
// in the URL fragment (#tgWebAppData=...&tgWebAppThemeParams=...).

/** Telegram theme parameters (colours as #rrggbb). */
export interface ThemeParams {
  bg_color?: string;
  text_color?: string;
  hint_color?: string;
  link_color?: string;
  button_color?: string;
  button_text_color?: string;
  secondary_bg_color?: string;
  section_bg_color?: string;
  destructive_text_color?: string;
}

interface WebApp {
  initData?: string;
  initDataUnsafe?: { start_param?: string; user?: { language_code?: string } };
  themeParams?: ThemeParams;
  colorScheme?: 'light' | 'dark';
  ready?: () => void;
  expand?: () => void;
  close?: () => void;
  openTelegramLink?: (url: string) => void;
  onEvent?: (event: string, handler: () => void) => void;
  offEvent?: (event: string, handler: () => void) => void;
  HapticFeedback?: { impactOccurred?: (style: string) => void };
}

declare global {
  interface Window {
    Telegram?: { WebApp?: WebApp };
  }
}

/** The Telegram WebApp object when the client injected it. */
export function webApp(): WebApp | undefined {
  return window.Telegram?.WebApp;
}

function hashParams(): URLSearchParams {
  return new URLSearchParams(window.location.hash.replace(/^#/, ''));
}

/** The signed launch data, or null when the page was not opened from Telegram. */
export function readInitData(): string | null {
  const injected = webApp()?.initData;
  if (injected) return injected;
  return hashParams().get('tgWebAppData') || null;
}

/** The merchant whose bot opened the app: ?m=<id>, else the start parameter. */
export function readMerchantId(): string | null {
  const query = new URLSearchParams(window.location.search).get('m');
  if (query) return query;
  const start = webApp()?.initDataUnsafe?.start_param ?? hashParams().get('tgWebAppStartParam');
  return start || null;
}

/** The theme: from WebApp.themeParams, else the URL fragment. */
export function readTheme(): ThemeParams {
  const injected = webApp()?.themeParams;
  if (injected && Object.keys(injected).length > 0) return injected;
  const raw = hashParams().get('tgWebAppThemeParams');
  if (!raw) return {};
  try {
    return JSON.parse(raw) as ThemeParams;
  } catch {
    return {};
  }
}

function luminance(hex: string): number | null {
  const match = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!match?.[1]) return null;
  const n = Number.parseInt(match[1], 16);
  const channel = (shift: number) => ((n >> shift) & 255) / 255;
  return 0.2126 * channel(16) + 0.7152 * channel(8) + 0.0722 * channel(0);
}

/** 'dark' or 'light': Telegram's colorScheme, else judged from the background colour. */
export function colorScheme(theme: ThemeParams): 'light' | 'dark' {
  const scheme = webApp()?.colorScheme;
  if (scheme === 'dark' || scheme === 'light') return scheme;
  const bg = theme.bg_color ? luminance(theme.bg_color) : null;
  if (bg !== null) return bg < 0.4 ? 'dark' : 'light';
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

const DEFAULTS: Record<
  'light' | 'dark',
  Required<
    Pick<
      ThemeParams,
      | 'bg_color'
      | 'text_color'
      | 'hint_color'
      | 'button_color'
      | 'button_text_color'
      | 'secondary_bg_color'
      | 'link_color'
    >
  >
> = {
  light: {
    bg_color: '#ffffff',
    text_color: '#0f172a',
    hint_color: '#64748b',
    button_color: '#4f46e5',
    button_text_color: '#ffffff',
    secondary_bg_color: '#f1f5f9',
    link_color: '#4f46e5',
  },
  dark: {
    bg_color: '#17212b',
    text_color: '#f5f5f5',
    hint_color: '#8b9bab',
    button_color: '#5288c1',
    button_text_color: '#ffffff',
    secondary_bg_color: '#232e3c',
    link_color: '#6ab3f3',
  },
};

/** The theme as CSS variables for the app's root element. */
export function themeVariables(theme: ThemeParams, scheme: 'light' | 'dark'): Record<string, string> {
  const base = DEFAULTS[scheme];
  const pick = (key: keyof typeof base) => theme[key] ?? base[key];
  return {
    '--tg-bg': pick('bg_color'),
    '--tg-text': pick('text_color'),
    '--tg-hint': pick('hint_color'),
    '--tg-button': pick('button_color'),
    '--tg-button-text': pick('button_text_color'),
    '--tg-secondary-bg': theme.secondary_bg_color ?? theme.section_bg_color ?? base.secondary_bg_color,
    // Telegram's grouped look: sections in bg_color on a secondary_bg_color page.
    '--tg-section-bg': theme.section_bg_color ?? pick('bg_color'),
    '--tg-link': pick('link_color'),
  };
}
