/* src/retention--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION retention UPDATE TO '1.1'" to load this file. \quit

/*
 * retention 1.1: what changed since the released 1.0.
 *
 * 1.0 is released and its script (retention--1.0.sql) is never edited.  A
 * new install of 1.1 runs that script and then this one (CREATE EXTENSION
 * follows the update path when no retention--1.1.sql exists), so a fresh
 * install and an upgraded database run the same statements: test/t/
 * 014_upgrade.pl checks that the two end up alike, and that an upgraded
 * database keeps its data, holds, consents, keys and audit chain.
 *
 * Each section below names the change it makes and why.
 */
