import type { FastifyBaseLogger } from 'fastify';
import { Bot, type Context, InlineKeyboard, InputFile, Keyboard } from 'grammy';
import QRCode from 'qrcode';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { normalizePhone } from '../../lib/phone.js';
import { listCustomerOffers } from '../campaigns/campaigns.offers.js';
import {
  findCustomerByTelegramUser,
  getCustomerProfile,
  issueCustomerCode,
  registerTelegramCustomer,
} from '../customers/customers.service.js';
import {
  describeTelegramError,
  instrumentTelegramApi,
  TELEGRAM_TIMEOUT_MS,
} from '../telegram/telegram.client.js';
import { type Locale, normalizeLocale } from '../telegram/telegram.messages.js';
import { BOT_TEXTS, MENU_LABELS, type MenuAction, menuActionOf, SHARE_PHONE_LABEL } from './bot.messages.js';
import { listRecentHistory, miniAppUrl, rememberBotReferral } from './bot.service.js';

// The conversation of a merchant's customer bot: /start -> phone (Telegram's contact button) ->
// menu (balance, code with QR, history, Mini App, referral link). /start ref_<code> (a customer's
// referral link) names who brought the user; it is kept until they join. Private chats only; groups are ignored.
// Every handler reads the customer afresh by Telegram user id: the database, not the bot, holds state.

/** The merchant a bot speaks for; the route refreshes the name before each update. */
export interface BotMerchant {
  id: string;
  name: string;
}

/** What a merchant bot needs besides its token. */
export interface MerchantBotDeps {
  db: Database;
  config: Pick<Config, 'TELEGRAM_API_BASE_URL' | 'API_BASE_URL' | 'CUSTOMER_CODE_TTL_SECONDS'>;
  log: FastifyBaseLogger;
}

function localeOf(ctx: Context): Locale {
  return normalizeLocale(ctx.from?.language_code);
}

function contactKeyboard(locale: Locale) {
  return new Keyboard().requestContact(SHARE_PHONE_LABEL[locale]).resized().oneTime();
}

function menuKeyboard(locale: Locale, appUrl: string | null) {
  const labels = MENU_LABELS[locale];
  const keyboard = new Keyboard()
    .text(labels.balance)
    .text(labels.code)
    .row()
    .text(labels.history)
    .text(labels.offers);
  // The app opens from an inline button (sent on press): a reply-keyboard web_app button would
  // launch the Mini App without initData, so it could not sign in.
  if (appUrl) keyboard.text(labels.app);
  return keyboard.row().text(labels.invite).resized().persistent();
}

/** The phone of a Telegram contact in E.164; Telegram sends international numbers, often without "+". */
function contactPhone(phone: string): string | null {
  const trimmed = phone.trim();
  return normalizePhone(/^\d+$/.test(trimmed) ? `+${trimmed}` : trimmed);
}

function telegramName(from: { first_name: string; last_name?: string }): string | null {
  const name = [from.first_name, from.last_name].filter((p) => p && p.trim() !== '').join(' ');
  return name === '' ? null : name.slice(0, 200);
}

/** Builds a merchant's grammY bot (webhook mode: no getMe, updates come through handleUpdate). */
export function createMerchantBot(options: {
  token: string;
  username: string;
  merchant: BotMerchant;
  deps: MerchantBotDeps;
}): Bot {
  const { merchant, deps } = options;
  const { db, config } = deps;
  const botId = Number(options.token.split(':')[0]);
  const bot = new Bot(options.token, {
    // The username was stored when the bot was connected (getMe); handleUpdate needs botInfo.
    botInfo: {
      id: botId,
      is_bot: true,
      first_name: options.username,
      username: options.username,
      can_join_groups: false,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
      can_connect_to_business: false,
      has_main_web_app: false,
      has_topics_enabled: false,
      allows_users_to_create_topics: false,
      can_manage_bots: false,
      supports_join_request_queries: false,
    },
    client: {
      // grammY refuses an apiRoot with a trailing slash.
      apiRoot: config.TELEGRAM_API_BASE_URL.replace(/\/+$/, ''),
      timeoutSeconds: TELEGRAM_TIMEOUT_MS / 1000,
    },
  });
  // Counted in external_requests_total{provider="telegram"} like every other Bot API call.
  instrumentTelegramApi(bot.api);
  const appUrl = () => miniAppUrl(config.API_BASE_URL, merchant.id);
  const findCustomer = (telegramUserId: number) =>
    findCustomerByTelegramUser(db, { merchantId: merchant.id, telegramUserId });

  async function askPhone(ctx: Context, locale: Locale): Promise<void> {
    await ctx.reply(BOT_TEXTS.askPhone(locale), { reply_markup: contactKeyboard(locale) });
  }

  async function showMenu(ctx: Context, locale: Locale, text: string): Promise<void> {
    await ctx.reply(text, { reply_markup: menuKeyboard(locale, appUrl()) });
  }

  async function setMenuButton(ctx: Context, locale: Locale): Promise<void> {
    const url = appUrl();
    const chatId = ctx.chat?.id;
    if (!url || chatId === undefined) return;
    // The chat's menu button opens the Mini App with initData; a nicety, so a failure is only logged.
    try {
      await ctx.api.setChatMenuButton({
        chat_id: chatId,
        menu_button: { type: 'web_app', text: MENU_LABELS[locale].app, web_app: { url } },
      });
    } catch (error) {
      deps.log.warn({ error: describeTelegramError(error, options.token) }, 'setChatMenuButton failed');
    }
  }

  async function runAction(ctx: Context, action: MenuAction, customerId: string, locale: Locale) {
    const ids = { merchantId: merchant.id, customerId };
    switch (action) {
      case 'balance': {
        const profile = await getCustomerProfile(db, ids);
        await showMenu(ctx, locale, BOT_TEXTS.balance(profile, locale));
        return;
      }
      case 'code': {
        const issued = await issueCustomerCode(db, { ...ids, ttlSeconds: config.CUSTOMER_CODE_TTL_SECONDS });
        await ctx.reply(BOT_TEXTS.code(issued.code, issued.ttlSeconds, locale));
        const png = await QRCode.toBuffer(issued.code, {
          type: 'png',
          width: 480,
          margin: 2,
          errorCorrectionLevel: 'M',
        });
        await ctx.replyWithPhoto(new InputFile(png, `code-${issued.code}.png`), {
          caption: BOT_TEXTS.codeCaption(issued.code, locale),
        });
        return;
      }
      case 'history': {
        const entries = await listRecentHistory(db, ids);
        await showMenu(ctx, locale, BOT_TEXTS.history(entries, locale));
        return;
      }
      case 'offers': {
        const { offers, timeZone } = await listCustomerOffers(db, { ...ids, locale });
        await showMenu(ctx, locale, BOT_TEXTS.offers(offers, locale, timeZone));
        return;
      }
      case 'invite': {
        const profile = await getCustomerProfile(db, ids);
        await showMenu(ctx, locale, BOT_TEXTS.invite(profile, locale));
        return;
      }
      case 'app': {
        const url = appUrl();
        if (!url) {
          await showMenu(ctx, locale, BOT_TEXTS.appUnavailable(locale));
          return;
        }
        await ctx.reply(BOT_TEXTS.openApp(locale), {
          reply_markup: new InlineKeyboard().webApp(MENU_LABELS[locale].app, url),
        });
        return;
      }
    }
  }

  const chat = bot.chatType('private');

  chat.command('start', async (ctx) => {
    const locale = localeOf(ctx);
    const customer = await findCustomer(ctx.from.id);
    const greeting = BOT_TEXTS.greeting(merchant.name, locale);
    if (!customer) {
      // A referral link (start=ref_<code>): kept until this user shares their phone and joins.
      await rememberBotReferral(db, {
        merchantId: merchant.id,
        telegramUserId: ctx.from.id,
        startParameter: ctx.match,
      });
      await ctx.reply(`${greeting}\n\n${BOT_TEXTS.askPhone(locale)}`, {
        reply_markup: contactKeyboard(locale),
      });
      return;
    }
    await showMenu(ctx, locale, `${greeting}\n\n${BOT_TEXTS.menuHint(locale)}`);
  });

  chat.on('message:contact', async (ctx) => {
    const locale = localeOf(ctx);
    const contact = ctx.message.contact;
    // Only the user's own number, sent with the contact button: Telegram fills user_id from its own
    // records, so a card typed by hand or someone else's contact never matches the sender.
    if (contact.user_id !== ctx.from.id) {
      await ctx.reply(BOT_TEXTS.notOwnContact(locale), { reply_markup: contactKeyboard(locale) });
      return;
    }
    const phone = contactPhone(contact.phone_number);
    if (!phone) {
      await ctx.reply(BOT_TEXTS.badPhone(locale), { reply_markup: contactKeyboard(locale) });
      return;
    }
    const registration = await registerTelegramCustomer(db, {
      merchantId: merchant.id,
      phone,
      telegramUserId: ctx.from.id,
      name: telegramName(ctx.from),
    });
    const text =
      registration.outcome === 'already_registered'
        ? BOT_TEXTS.alreadyRegistered(registration.customer.phone, locale)
        : BOT_TEXTS.registered(registration.outcome, merchant.name, locale);
    await showMenu(ctx, locale, `${text}\n\n${BOT_TEXTS.menuHint(locale)}`);
    await setMenuButton(ctx, locale);
  });

  const commands: Record<string, MenuAction> = {
    balance: 'balance',
    code: 'code',
    history: 'history',
    offers: 'offers',
    app: 'app',
    invite: 'invite',
  };
  for (const [command, action] of Object.entries(commands)) {
    chat.command(command, async (ctx) => {
      const locale = localeOf(ctx);
      const customer = await findCustomer(ctx.from.id);
      if (!customer) return askPhone(ctx, locale);
      await runAction(ctx, action, customer.id, locale);
    });
  }

  chat.on('message', async (ctx) => {
    const locale = localeOf(ctx);
    const customer = await findCustomer(ctx.from.id);
    if (!customer) return askPhone(ctx, locale);
    const action = ctx.message.text === undefined ? null : menuActionOf(ctx.message.text);
    if (!action) return showMenu(ctx, locale, BOT_TEXTS.help(locale));
    await runAction(ctx, action, customer.id, locale);
  });

  return bot;
}
