{% raw -%}
// Reads an AI Studio app's Gemini calls with the TypeScript compiler API, for scripts/patch_frontend.py.
//
//   node scripts/read_app.mjs APP SERVICE [--typescript DIR]
//
// Prints one JSON object: every export of SERVICE (a path relative to APP) with what the patch needs to move
// its Gemini call to a prompt file (model, system instruction, contents as a template, config, response
// schema, the parameters the prompt uses) or why it cannot; the key entries of vite.config.ts's `define`; and
// whether the app has its own server holding the key (a full-stack export). Nothing is written.
//
// Why a compiler and not regular expressions: prompts are template literals with nested `${...}`, schemas are
// nested object literals with `Type.*` members, and the function's types (its return type when the call sends
// no schema) need the type checker. TypeScript 7 (the native port) ships no JavaScript API, so the compiler
// comes from the app's own node_modules when it is 5.x or 6.x, or from --typescript DIR.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const [appArg, serviceArg, ...rest] = process.argv.slice(2);
const fail = (message) => {
  process.stderr.write(`${message}\n`);
  process.exit(2);
};
if (!appArg || !serviceArg) fail('usage: node read_app.mjs APP SERVICE [--typescript DIR]');
const app = resolve(appArg);
const tsOption = rest.indexOf('--typescript');

const loadTypeScript = () => {
  const tried = [];
  const candidates = tsOption !== -1 ? [resolve(rest[tsOption + 1])] : [];
  candidates.push('typescript');
  for (const candidate of candidates) {
    try {
      const ts = createRequire(join(app, 'package.json'))(candidate);
      if (typeof ts.createSourceFile === 'function') return ts;
      tried.push(`${candidate} ${ts.version ?? ''} has no JavaScript API`);
    } catch (error) {
      tried.push(`${candidate}: ${error.code ?? error.message}`);
    }
  }
  return fail(
    `No TypeScript compiler API found (${tried.join('; ')}). Run \`npm install --save-dev typescript@6.0.3\` in ` +
      'the app (TypeScript 7 has no JavaScript API), or pass --typescript with the folder of a typescript 5.x/6.x package.',
  );
};
const ts = loadTypeScript();

// SERVICE `-`: the app has no browser service (a full-stack export); only its server and vite.config are read.
const servicePath = join(app, serviceArg === '-' ? '.no-service.ts' : serviceArg);
const program = ts.createProgram(serviceArg === '-' ? [] : [servicePath], {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  jsx: ts.JsxEmit.ReactJSX,
  allowImportingTsExtensions: true,
  skipLibCheck: true,
  types: [],
  // No DOM types: a Gemini call's prompt, schema and parameters need none, and they are half the compiler's work.
  lib: ['lib.es2022.d.ts'],
});
const checker = program.getTypeChecker();
const source = program.getSourceFile(servicePath) ?? ts.createSourceFile(servicePath, '', ts.ScriptTarget.Latest, true);
if (serviceArg !== '-' && !source.statements.length && !existsSync(servicePath)) fail(`cannot read ${serviceArg}`);

const text = (node) => node.getText(source);
const isKeyName = (name) => /API_KEY|GEMINI_KEY|GOOGLE_API_KEY/.test(name);
/** `process.env.X` or `import.meta.env.X` with a key-like X. */
const readsKeyDirectly = (node) =>
  ts.isPropertyAccessExpression(node) &&
  isKeyName(node.name.text) &&
  /^(process\.env|import\.meta\.env)$/.test(node.expression.getText(source));

// Module-level constants, by name: prompts, models and schemas are often declared once above the functions.
const moduleConsts = new Map();
const keyHolders = new Set(); // module-level names whose value is the key, or a client built with it
for (const statement of source.statements) {
  if (!ts.isVariableStatement(statement)) continue;
  for (const declaration of statement.declarationList.declarations) {
    if (!ts.isIdentifier(declaration.name)) continue;
    if (declaration.initializer) moduleConsts.set(declaration.name.text, declaration.initializer);
    let touchesKey = false;
    const visit = (node) => {
      if (readsKeyDirectly(node) || (ts.isIdentifier(node) && keyHolders.has(node.text))) touchesKey = true;
      ts.forEachChild(node, visit);
    };
    if (declaration.initializer) visit(declaration.initializer);
    if (touchesKey || /GoogleGenAI|GoogleGenerativeAI/.test(declaration.initializer?.getText(source) ?? '')) {
      keyHolders.add(declaration.name.text);
    }
  }
}
// `ai = new GoogleGenAI(...)` inside an `if`: the assigned names hold the client too.
const findAssignments = (node) => {
  if (
    ts.isBinaryExpression(node) &&
    node.operatorToken.kind === ts.SyntaxKind.EqualsToken &&
    ts.isIdentifier(node.left) &&
    /GoogleGenAI/.test(node.right.getText(source))
  ) {
    keyHolders.add(node.left.text);
  }
  ts.forEachChild(node, findAssignments);
};
findAssignments(source);

/** A JSON value of a literal expression, or undefined with the reason in `todo`. */
const literal = (node, todo, where, locals = new Map()) => {
  if (ts.isParenthesizedExpression(node) || ts.isAsExpression(node) || ts.isSatisfiesExpression?.(node)) {
    return literal(node.expression, todo, where, locals);
  }
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isNumericLiteral(node)) return Number(node.text);
  if (ts.isPrefixUnaryExpression(node) && node.operator === ts.SyntaxKind.MinusToken && ts.isNumericLiteral(node.operand)) {
    return -Number(node.operand.text);
  }
  if (node.kind === ts.SyntaxKind.TrueKeyword) return true;
  if (node.kind === ts.SyntaxKind.FalseKeyword) return false;
  if (node.kind === ts.SyntaxKind.NullKeyword) return null;
  if (ts.isArrayLiteralExpression(node)) return node.elements.map((item) => literal(item, todo, where, locals));
  if (ts.isObjectLiteralExpression(node)) {
    const value = {};
    for (const property of node.properties) {
      if (ts.isShorthandPropertyAssignment(property)) {
        value[property.name.text] = literal(property.name, todo, `${where}.${property.name.text}`, locals);
      } else if (ts.isPropertyAssignment(property) && !ts.isComputedPropertyName(property.name)) {
        value[property.name.text] = literal(property.initializer, todo, `${where}.${property.name.text}`, locals);
      } else {
        todo.push(`${where}: ${text(property).slice(0, 80)} is not a plain property`);
      }
    }
    return value;
  }
  // The SDK's enums: Type.OBJECT, ThinkingLevel.LOW, HarmCategory... -> their member name.
  if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && /^[A-Z]/.test(node.expression.text)) {
    return { $enum: node.expression.text, member: node.name.text };
  }
  if (ts.isIdentifier(node)) {
    const local = locals.get(node.text) ?? moduleConsts.get(node.text);
    if (local) return literal(local, todo, where, locals);
  }
  todo.push(`${where}: \`${text(node).slice(0, 80)}\` is computed`);
  return undefined;
};

/** The SDK's schema form (Type.OBJECT, nullable, ...) as JSON Schema. */
const jsonSchema = (schema, todo, where) => {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    todo.push(`${where}: not a schema object`);
    return {};
  }
  const out = {};
  let nullable = false;
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'type') {
      out.type = (typeof value === 'object' && value ? value.member : String(value)).toLowerCase();
    } else if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value ?? {}).map(([name, sub]) => [name, jsonSchema(sub, todo, `${where}.${name}`)]),
      );
    } else if (key === 'items') {
      out.items = jsonSchema(value, todo, `${where}[]`);
    } else if (key === 'nullable') {
      nullable = value === true;
    } else if (key === 'propertyOrdering') {
      // Gemini's ordering hint; JSON Schema keeps the properties' order already.
    } else if (['required', 'enum', 'description', 'format', 'minimum', 'maximum', 'minItems', 'maxItems',
      'minLength', 'maxLength', 'pattern', 'title', 'default'].includes(key)) {
      out[key] = ['minItems', 'maxItems', 'minLength', 'maxLength'].includes(key) ? Number(value) : value;
    } else if (key === 'anyOf') {
      out.anyOf = (value ?? []).map((sub, index) => jsonSchema(sub, todo, `${where}.anyOf[${index}]`));
    } else {
      todo.push(`${where}: schema key ${key} is not translated`);
    }
  }
  if (out.type === 'object' && out.properties && !out.required) out.required = [];
  return nullable ? { anyOf: [out, { type: 'null' }] } : out;
};

/** A TypeScript type as JSON Schema (the answer's shape when the call sent responseMimeType json and no schema). */
const typeSchema = (type, todo, where, depth = 0) => {
  if (depth > 8) {
    todo.push(`${where}: type too deep`);
    return {};
  }
  const flags = type.getFlags();
  if (type.isUnion()) {
    const members = type.types.filter((member) => !(member.getFlags() & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
    const allows = members.length !== type.types.length;
    if (members.every((member) => member.isStringLiteral())) {
      const schema = { type: 'string', enum: members.map((member) => member.value) };
      return allows ? { anyOf: [schema, { type: 'null' }] } : schema;
    }
    if (members.every((member) => member.getFlags() & ts.TypeFlags.BooleanLiteral)) return { type: 'boolean' };
    if (members.length === 1) return typeSchema(members[0], todo, where, depth + 1);
    todo.push(`${where}: union type ${checker.typeToString(type)}`);
    return {};
  }
  if (flags & (ts.TypeFlags.String | ts.TypeFlags.StringLiteral)) return { type: 'string' };
  if (flags & (ts.TypeFlags.Number | ts.TypeFlags.NumberLiteral)) return { type: 'number' };
  if (flags & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral)) return { type: 'boolean' };
  if (checker.isArrayType(type)) {
    return { type: 'array', items: typeSchema(checker.getTypeArguments(type)[0], todo, `${where}[]`, depth + 1) };
  }
  if (flags & ts.TypeFlags.Object) {
    const properties = {};
    const required = [];
    for (const symbol of checker.getPropertiesOfType(type)) {
      const declaration = symbol.valueDeclaration ?? symbol.declarations?.[0];
      const propertyType = checker.getTypeOfSymbolAtLocation(symbol, declaration ?? source);
      properties[symbol.name] = typeSchema(propertyType, todo, `${where}.${symbol.name}`, depth + 1);
      if (!(symbol.getFlags() & ts.SymbolFlags.Optional)) required.push(symbol.name);
    }
    return { type: 'object', properties, required };
  }
  todo.push(`${where}: type ${checker.typeToString(type)} has no JSON form`);
  return {};
};

/** The Gemini call inside a function body: `<client>.models.generateContent[Stream](...)`. */
const findCalls = (body) => {
  const calls = [];
  const visit = (node) => {
    if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      ['generateContent', 'generateContentStream'].includes(node.expression.name.text) &&
      ts.isPropertyAccessExpression(node.expression.expression) &&
      node.expression.expression.name.text === 'models'
    ) {
      calls.push(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(body);
  return calls;
};

/** Other uses of the client than generateContent: chats, images, files... (not translatable). */
const otherClientUse = (body) => {
  let found;
  const visit = (node) => {
    // ai.chats / client().chats / ai.live ...: the client (a name, or a function returning it) used otherwise.
    const receiver = ts.isPropertyAccessExpression(node) && ts.isCallExpression(node.expression) ? node.expression.expression : node.expression;
    if (
      !found &&
      ts.isPropertyAccessExpression(node) &&
      receiver && ts.isIdentifier(receiver) &&
      keyHolders.has(receiver.text) &&
      node.name.text !== 'models'
    ) {
      found = text(node);
    }
    if (!found && ts.isPropertyAccessExpression(node) && node.name.text === 'models') {
      const parent = node.parent;
      if (ts.isPropertyAccessExpression(parent) && !['generateContent', 'generateContentStream'].includes(parent.name.text)) {
        found = text(parent);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(body);
  return found;
};

const touchesKey = (node) => {
  let found = false;
  const visit = (child) => {
    if (readsKeyDirectly(child) || (ts.isIdentifier(child) && keyHolders.has(child.text))) found = true;
    if (!found) ts.forEachChild(child, visit);
  };
  visit(node);
  return found;
};

/** Local `const x = ...` declarations of a function body, by name. */
const localConsts = (body) => {
  const locals = new Map();
  const visit = (node) => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
      const list = node.parent;
      if (ts.isVariableDeclarationList(list) && list.flags & ts.NodeFlags.Const) locals.set(node.name.text, node.initializer);
    }
    ts.forEachChild(node, visit);
  };
  visit(body);
  return locals;
};

/** `plan.subject` where `plan` is an object parameter with that field: { param: 'plan', path: 'plan.subject' }. */
const fieldOf = (node, params) => {
  if (!ts.isPropertyAccessExpression(node) || node.questionDotToken || !ts.isIdentifier(node.expression)) return undefined;
  const param = params.find((item) => item.name === node.expression.text);
  if (!param?.fields?.[node.name.text]) return undefined;
  return { param: param.name, path: `${param.name}.${node.name.text}` };
};

/**
 * A prompt text as Handlebars pieces: literal text, `{{param}}`, `{{param.field}}` (a field of an object parameter)
 * and `{{#if param}}...{{/if}}`; the parameters it uses go in `used`, and each field as `param.field`. Anything
 * else (a call, a method, an image part) is a TODO, never guessed.
 */
const template = (node, params, locals, todo, used, where, seen = new Set()) => {
  const escape = (value) => value.replace(/\\/g, '\\\\').replace(/\{\{/g, '\\{{');
  if (ts.isParenthesizedExpression(node) || ts.isAsExpression(node)) {
    return template(node.expression, params, locals, todo, used, where, seen);
  }
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return escape(node.text);
  if (ts.isTemplateExpression(node)) {
    let out = escape(node.head.text);
    for (const span of node.templateSpans) {
      out += template(span.expression, params, locals, todo, used, where, seen) + escape(span.literal.text);
    }
    return out;
  }
  if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    return (
      template(node.left, params, locals, todo, used, where, seen) +
      template(node.right, params, locals, todo, used, where, seen)
    );
  }
  const field = fieldOf(node, params);
  if (field) {
    used.add(field.param).add(field.path);
    return `{{${field.path}}}`;
  }
  if (ts.isIdentifier(node)) {
    const param = params.find((item) => item.name === node.text);
    if (param) {
      if (!param.kind) {
        todo.push(`${where}: parameter ${param.name} is a ${param.type}, not a string, number or boolean`);
        return '';
      }
      used.add(param.name);
      return `{{${param.name}}}`;
    }
    const local = locals.get(node.text) ?? moduleConsts.get(node.text);
    if (local && !seen.has(node.text)) {
      seen.add(node.text);
      return template(local, params, locals, todo, used, where, seen);
    }
  }
  if (ts.isConditionalExpression(node)) {
    // `level ? ... : ''` or `plan.level ? ... : ''`: a Handlebars #if on that value.
    const param = ts.isIdentifier(node.condition) ? params.find((item) => item.name === node.condition.text) : undefined;
    const target = fieldOf(node.condition, params) ?? (param?.kind ? { param: param.name, path: param.name } : undefined);
    const otherwise = node.whenFalse;
    const empty = (ts.isStringLiteral(otherwise) || ts.isNoSubstitutionTemplateLiteral(otherwise)) && otherwise.text === '';
    if (target) {
      used.add(target.param).add(target.path);
      const then = template(node.whenTrue, params, locals, todo, used, where, seen);
      const other = empty ? '' : `{{else}}${template(otherwise, params, locals, todo, used, where, seen)}`;
      return `{{#if ${target.path}}}${then}${other}{{/if}}`;
    }
  }
  todo.push(`${where}: \`${text(node).slice(0, 100)}\` is computed (not a parameter or a literal text)`);
  return '';
};

/** A string, number or boolean type (undefined aside): its kind, and a string literal union's values. */
const primitive = (type) => {
  const plain = type.isUnion() ? type.types.filter((member) => !(member.getFlags() & ts.TypeFlags.Undefined)) : [type];
  if (plain.every((member) => member.getFlags() & ts.TypeFlags.StringLiteral)) {
    return { kind: 'string', enum: plain.map((member) => member.value) };
  }
  if (plain.every((member) => member.getFlags() & (ts.TypeFlags.String | ts.TypeFlags.StringLiteral))) return { kind: 'string' };
  if (plain.every((member) => member.getFlags() & (ts.TypeFlags.Number | ts.TypeFlags.NumberLiteral))) return { kind: 'number' };
  if (plain.every((member) => member.getFlags() & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral))) return { kind: 'boolean' };
  return undefined;
};

/**
 * The fields of an object parameter (an interface or type of strings, numbers and booleans, e.g. `plan: StudyPlan`)
 * that a prompt may use as `plan.subject`; undefined for anything else (arrays, nested objects, functions).
 */
const objectFields = (type) => {
  if (!(type.getFlags() & ts.TypeFlags.Object) || checker.isArrayType(type)) return undefined;
  if (checker.getSignaturesOfType(type, ts.SignatureKind.Call).length > 0) return undefined;
  const fields = {};
  for (const symbol of checker.getPropertiesOfType(type)) {
    const declaration = symbol.valueDeclaration ?? symbol.declarations?.[0];
    const found = primitive(checker.getTypeOfSymbolAtLocation(symbol, declaration ?? source));
    if (!found) return undefined;
    fields[symbol.name] = { ...found, optional: Boolean(symbol.getFlags() & ts.SymbolFlags.Optional) };
  }
  return Object.keys(fields).length ? fields : undefined;
};

const paramInfo = (parameter) => {
  const type = checker.getTypeAtLocation(parameter);
  const optional = Boolean(parameter.questionToken || parameter.initializer);
  const found = primitive(type);
  const callable = checker.getSignaturesOfType(checker.getNonNullableType(type), ts.SignatureKind.Call).length > 0;
  return {
    name: ts.isIdentifier(parameter.name) ? parameter.name.text : text(parameter.name),
    type: checker.typeToString(type),
    optional,
    kind: found?.kind,
    enum: found?.enum,
    // Only a required object parameter: an optional one would need the app's own handling of its absence.
    fields: found || optional ? undefined : objectFields(type),
    callable,
  };
};

/** How a streaming function hands out the text: `yield chunk.text` (a generator) or `onChunk(chunk.text)`. */
const streamForm = (body, params, todo, where) => {
  let form;
  const visit = (node) => {
    if (ts.isForOfStatement(node) && node.awaitModifier && ts.isVariableDeclarationList(node.initializer)) {
      const chunk = node.initializer.declarations[0].name.getText(source);
      const isChunkText = (expression) => {
        // chunk.text, or chunk.text ?? '' / || '' (the SDK types it string | undefined)
        if (expression && ts.isBinaryExpression(expression) && ts.isStringLiteral(expression.right) &&
          [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(expression.operatorToken.kind)) {
          expression = expression.left;
        }
        return Boolean(expression && ts.isPropertyAccessExpression(expression) && expression.name.text === 'text' &&
          expression.expression.getText(source) === chunk);
      };
      const inner = (child) => {
        if (ts.isYieldExpression(child) && isChunkText(child.expression)) form = { form: 'generator' };
        if (ts.isCallExpression(child) && ts.isIdentifier(child.expression) && isChunkText(child.arguments[0])) {
          const param = params.find((item) => item.name === child.expression.text && item.callable);
          if (param) form = { form: 'callback', callback: param.name };
        }
        ts.forEachChild(child, inner);
      };
      inner(node.statement);
    }
    if (!form) ts.forEachChild(node, visit);
  };
  visit(body);
  if (!form) todo.push(`${where}: the streamed text is not handed out as \`yield chunk.text\` or \`onChunk(chunk.text)\``);
  return form;
};

const CONFIG_KEYS = new Set(['temperature', 'topP', 'topK', 'maxOutputTokens', 'stopSequences', 'seed',
  'presencePenalty', 'frequencyPenalty']);

const readCall = (fn, name, params, call) => {
  const todo = [];
  const where = name;
  const locals = localConsts(fn.body);
  const streaming = call.expression.name.text === 'generateContentStream';
  const request = call.arguments[0] ? literalNode(call.arguments[0], locals) : undefined;
  if (!request || !ts.isObjectLiteralExpression(request)) {
    todo.push(`${where}: the request is not an object literal`);
    return { streaming, todo };
  }
  const property = (object, key) =>
    object.properties.find((item) => ts.isPropertyAssignment(item) && item.name.getText(source) === key);
  const used = new Set();
  const result = { streaming, todo, config: {} };
  const model = property(request, 'model');
  if (model) result.model = literal(model.initializer, todo, `${where}: model`, locals);
  const contents = property(request, 'contents');
  if (!contents) todo.push(`${where}: no contents`);
  else {
    const value = literalNode(contents.initializer, locals);
    if (ts.isArrayLiteralExpression(value) || ts.isObjectLiteralExpression(value)) {
      const hasMedia = /inlineData|fileData|role\s*:/.test(text(value));
      todo.push(`${where}: contents ${hasMedia ? 'has image/file parts or chat history' : 'is a list of parts'}; only a text prompt is translated`);
    } else {
      result.contents = template(contents.initializer, params, locals, todo, used, `${where}: contents`);
    }
  }
  const config = property(request, 'config');
  if (config) {
    const configNode = literalNode(config.initializer, locals);
    if (!ts.isObjectLiteralExpression(configNode)) todo.push(`${where}: config is computed`);
    else {
      for (const item of configNode.properties) {
        const key = item.name?.getText(source);
        if (!ts.isPropertyAssignment(item)) {
          todo.push(`${where}: config ${text(item).slice(0, 60)} is not a plain property`);
        } else if (key === 'systemInstruction') {
          result.system = template(item.initializer, params, locals, todo, used, `${where}: systemInstruction`);
        } else if (key === 'responseMimeType') {
          result.mimeType = literal(item.initializer, todo, `${where}: responseMimeType`, locals);
        } else if (key === 'responseSchema' || key === 'responseJsonSchema') {
          const schema = literal(item.initializer, todo, `${where}: ${key}`, locals);
          result.schema = jsonSchema(schema, todo, `${where}: ${key}`);
        } else if (key === 'thinkingConfig') {
          const thinking = literal(item.initializer, todo, `${where}: thinkingConfig`, locals) ?? {};
          for (const [thinkingKey, value] of Object.entries(thinking)) {
            if (thinkingKey === 'thinkingLevel') {
              result.config.thinkingLevel = (typeof value === 'object' ? value.member : String(value)).toLowerCase();
            } else {
              todo.push(`${where}: thinkingConfig.${thinkingKey} is not translated (Gemini 3 models take thinkingLevel)`);
            }
          }
        } else if (CONFIG_KEYS.has(key)) {
          result.config[key] = literal(item.initializer, todo, `${where}: config.${key}`, locals);
        } else {
          todo.push(`${where}: config.${key} (${text(item.initializer).slice(0, 40)}) is not translated`);
        }
      }
    }
  }
  for (const key of request.properties.map((item) => item.name?.getText(source))) {
    if (!['model', 'contents', 'config'].includes(key)) todo.push(`${where}: request field ${key} is not translated`);
  }
  result.used = [...used];
  return result;
};

/** An identifier that names a local or module-level const, followed to its value. */
const literalNode = (node, locals) => {
  let current = node;
  for (let hops = 0; hops < 5 && ts.isIdentifier(current); hops += 1) {
    const next = locals.get(current.text) ?? moduleConsts.get(current.text);
    if (!next) break;
    current = next;
  }
  return current;
};

/** The function an export declares: `export const f = async (...) => ...` or `export async function f(...)`. */
const exportedFunctions = [];
const otherExports = [];
const isExported = (node) => node.modifiers?.some((modifier) => modifier.kind === ts.SyntaxKind.ExportKeyword);
for (const statement of source.statements) {
  if (!isExported(statement)) continue;
  if (ts.isFunctionDeclaration(statement) && statement.name) {
    exportedFunctions.push({ name: statement.name.text, fn: statement, style: 'function', statement });
  } else if (ts.isVariableStatement(statement)) {
    for (const declaration of statement.declarationList.declarations) {
      const init = declaration.initializer;
      if (init && (ts.isArrowFunction(init) || ts.isFunctionExpression(init)) && ts.isIdentifier(declaration.name)) {
        exportedFunctions.push({ name: declaration.name.text, fn: init, style: 'const', statement });
      } else {
        otherExports.push({ name: declaration.name.getText(source), text: text(statement), touchesKey: touchesKey(statement) });
      }
    }
  } else {
    const name = statement.name?.getText(source) ?? '';
    otherExports.push({ name, text: text(statement), touchesKey: touchesKey(statement) });
  }
}

const functions = exportedFunctions.map(({ name, fn, style, statement }) => {
  const signature = checker.getSignatureFromDeclaration(fn);
  const returnType = signature ? checker.getReturnTypeOfSignature(signature) : undefined;
  const awaited = returnType ? checker.getAwaitedType(returnType) ?? returnType : undefined;
  const params = fn.parameters.map(paramInfo);
  const info = {
    name,
    style,
    async: Boolean(fn.modifiers?.some((modifier) => modifier.kind === ts.SyntaxKind.AsyncKeyword)),
    generator: Boolean(fn.asteriskToken),
    typeParameters: fn.typeParameters ? `<${fn.typeParameters.map(text).join(', ')}>` : '',
    paramsText: fn.parameters.map(text).join(', '),
    params,
    returnText: fn.type ? text(fn.type) : returnType ? checker.typeToString(returnType, fn, ts.TypeFormatFlags.NoTruncation) : 'unknown',
    resultText: awaited ? checker.typeToString(awaited, fn, ts.TypeFormatFlags.NoTruncation) : 'unknown',
    touchesKey: touchesKey(fn.body ?? fn),
    returnsBoolean: Boolean(awaited && awaited.getFlags() & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral)),
    text: text(statement),
  };
  const calls = fn.body ? findCalls(fn.body) : [];
  if (calls.length > 1) info.call = { todo: [`${name}: ${calls.length} Gemini calls in one function`] };
  else if (calls.length === 1) {
    info.call = readCall(fn, name, params, calls[0]);
    if (info.call.streaming) info.call.stream = streamForm(fn.body, params, info.call.todo, name);
    if (info.call.mimeType === 'application/json' && !info.call.schema) {
      // No schema sent: the app parsed the JSON and returned it as its declared type; that type is the shape.
      const todo = [];
      const item = info.generator || info.call.streaming ? undefined : awaited;
      if (item) info.call.schemaFromType = typeSchema(item, todo, `${name}: return type`);
      if (!item || todo.length) info.call.todo.push(...(todo.length ? todo : [`${name}: JSON answer without a responseSchema`]));
    }
  } else {
    const other = fn.body ? otherClientUse(fn.body) : undefined;
    if (other) info.call = { todo: [`${name}: uses ${other}, which the backend does not serve`] };
  }
  return info;
});

const imports = source.statements.filter(ts.isImportDeclaration).map((statement) => ({
  module: statement.moduleSpecifier.text,
  text: text(statement),
  names: (() => {
    const clause = statement.importClause;
    if (!clause) return [];
    const names = clause.name ? [clause.name.text] : [];
    const bindings = clause.namedBindings;
    if (bindings && ts.isNamespaceImport(bindings)) names.push(bindings.name.text);
    if (bindings && ts.isNamedImports(bindings)) names.push(...bindings.elements.map((element) => element.name.text));
    return names;
  })(),
}));

/** vite.config.ts: the `define` entries that put a key in the bundle, as [start, end] ranges to cut. */
const readVite = () => {
  const path = ['vite.config.ts', 'vite.config.mts', 'vite.config.js', 'vite.config.mjs'].find((name) => existsSync(join(app, name)));
  if (!path) return undefined;
  const text = readFileSync(join(app, path), 'utf8');
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const cuts = [];
  const visit = (node) => {
    if (ts.isPropertyAssignment(node) && node.name.getText(file) === 'define' && ts.isObjectLiteralExpression(node.initializer)) {
      const entries = node.initializer.properties;
      const keyed = entries.filter((entry) => isKeyName(entry.name?.getText(file) ?? '') || /API_KEY/.test(entry.getText(file)));
      if (keyed.length && keyed.length === entries.length) cuts.push(withComma(file, text, node));
      else for (const entry of keyed) cuts.push(withComma(file, text, entry));
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return { path, cuts };
};

/** A node's range with its trailing comma, widened to whole lines when it stands alone on its lines. */
const withComma = (file, text, node) => {
  let start = node.getStart(file);
  let end = node.getEnd();
  const after = text.slice(end).match(/^\s*,/);
  if (after) end += after[0].length;
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const lineEnd = text.indexOf('\n', end);
  if (!text.slice(lineStart, start).trim() && !text.slice(end, lineEnd === -1 ? text.length : lineEnd).trim()) {
    start = lineStart;
    end = lineEnd === -1 ? text.length : lineEnd + 1;
  } else if (!after) {
    // The last entry on a shared line: take the comma before it instead.
    const before = text.slice(0, start).match(/,\s*$/);
    if (before) start -= before[0].length;
  }
  return [start, end];
};

/** A full-stack export: its own server (Express) reads the key; the browser holds none. */
const readServer = () => {
  for (const path of ['server.ts', 'server.js', 'server/index.ts', 'src/server.ts', 'server/server.ts']) {
    if (!existsSync(join(app, path))) continue;
    const text = readFileSync(join(app, path), 'utf8');
    const file = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
    let express = false;
    let key;
    const visit = (node) => {
      if (ts.isImportDeclaration(node) && node.moduleSpecifier.text === 'express') express = true;
      if (ts.isCallExpression(node) && node.expression.getText(file) === 'require' && node.arguments[0]?.text === 'express') express = true;
      if (ts.isPropertyAccessExpression(node) && isKeyName(node.name.text) && node.expression.getText(file) === 'process.env') {
        key ??= `${path}:${file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1}: ${node.getText(file)}`;
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
    if (key) return { path, express, key };
  }
  return undefined;
};

process.stdout.write(
  `${JSON.stringify({ typescript: ts.version, imports, functions, otherExports, vite: readVite(), server: readServer() }, null, 1)}\n`,
);
{% endraw -%}
