import { describe, expect, it, vi } from "vitest";
import { createCache } from "../../src/index.js";
import { globToRegExp } from "../../src/keys.js";
import { fillTemplate } from "../../src/wrap.js";

const l1Cache = () => createCache({ redis: false, env: {} });

describe("key templates", () => {
  it("fill named placeholders from an object argument and positional ones by index", () => {
    expect(fillTemplate("{username}_posts:page_{page}", [{ username: "ada", page: 2 }])).toBe(
      "ada_posts:page_2",
    );
    expect(fillTemplate("user:{0}:{1}", ["a", 7])).toBe("user:a:7");
  });

  it("refuse a placeholder the arguments lack, instead of writing 'undefined'", () => {
    expect(() => fillTemplate("{username}_posts", [{ page: 1 }])).toThrow(/needs \{username\}/);
    expect(() => fillTemplate("{user}", [{ user: { id: 1 } }])).toThrow(/non-scalar/);
  });
});

describe("wrap and invalidating", () => {
  it("a wrapped call with a bad template rejects; it never throws synchronously", async () => {
    const fetchUser = l1Cache().wrap(async (q: { id?: number }) => q.id, { key: "user:{id}" });
    let pending: Promise<unknown> | undefined;
    expect(() => {
      pending = fetchUser({});
    }).not.toThrow();
    await expect(pending).rejects.toThrow(/needs \{id\}/);
  });

  it("wrap caches by the key template, invalidating drops keys, tags and patterns", async () => {
    const cache = l1Cache();
    const fetchPosts = vi.fn(async (q: { username: string; page: number }) => [`${q.username}-${q.page}`]);
    const posts = cache.wrap(fetchPosts, {
      key: "{username}_posts:page_{page}",
      tags: (q) => [`user:${q.username}`],
    });
    expect(await posts({ username: "ada", page: 1 })).toEqual(["ada-1"]);
    await posts({ username: "ada", page: 1 });
    await posts({ username: "ada", page: 2 });
    expect(fetchPosts).toHaveBeenCalledTimes(2);

    const renameByTag = cache.invalidating(async (q: { username: string }) => q.username, {
      tags: ["user:{username}"],
    });
    await renameByTag({ username: "ada" });
    await posts({ username: "ada", page: 1 });
    expect(fetchPosts).toHaveBeenCalledTimes(3);

    const byPattern = cache.invalidating(async (q: { username: string }) => q, {
      patterns: ["{username}_posts:*"],
    });
    await byPattern({ username: "ada" });
    await posts({ username: "ada", page: 1 });
    expect(fetchPosts).toHaveBeenCalledTimes(4);

    const byKey = cache.invalidating(async () => "ok", { keys: ["ada_posts:page_1"] });
    expect(await byKey()).toBe("ok");
    await posts({ username: "ada", page: 1 });
    expect(fetchPosts).toHaveBeenCalledTimes(5);
  });

  it("pattern placeholders are glob-escaped: user input cannot widen a pattern", async () => {
    const cache = l1Cache();
    await cache.set("a_posts:1", 1);
    await cache.set("b_posts:1", 1);
    const clear = cache.invalidating(async (name: string) => name, { patterns: ["{0}_posts:*"] });
    await clear("*");
    expect(await cache.exists("a_posts:1", "b_posts:1")).toBe(2);
    await clear("a");
    expect(await cache.exists("a_posts:1", "b_posts:1")).toBe(1);
  });
});

describe("glob matching of L1 keys", () => {
  it.each([
    ["tc:n:1:user:*", "tc:n:1:user:42", true],
    ["tc:n:1:user:*", "tc:n:2:user:42", false],
    ["tc:n:1:u?er", "tc:n:1:user", true],
    ["tc:n:1:[ab]x", "tc:n:1:bx", true],
    ["tc:n:1:[ab]x", "tc:n:1:cx", false],
    ["tc:n:1:a\\*b", "tc:n:1:a*b", true],
    ["tc:n:1:a\\*b", "tc:n:1:aXb", false],
  ])("%s matches %s: %s", (glob, key, expected) => {
    expect(globToRegExp(glob).test(key)).toBe(expected);
  });
});
